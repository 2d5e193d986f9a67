"""Load generator for the benches, in its own process.

    python -m bench.burst PORT PATH      # PATH: JSON list of raw HTTP requests, all to PORT
    python -m bench.burst --targets PATH # PATH: JSON list of [port, raw request]

Opens one connection per request, writes them all at once and prints each request's
time from its write to the first response line, as JSON. Running apart from the Slack
and OpenAI stand-ins keeps their work from delaying the reading of acks.

With PORT, any answer but 200 is an error (bench/turns.py part c). With --targets, each
request's status is printed too (0: the connection failed or closed before an answer),
so a bench can tell which events a process acknowledged before it was killed.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time


async def burst(targets: list[tuple[int, bytes]], strict: bool) -> dict:
    conns = [await asyncio.open_connection("127.0.0.1", port) for port, _ in targets]
    sent_at = []
    for (_, writer), (_, payload) in zip(conns, targets, strict=True):
        writer.write(payload)
        sent_at.append(time.perf_counter())
    first_write = time.time()

    async def read(i: int) -> tuple[float, int]:
        reader, writer = conns[i]
        try:
            status = await reader.readline()
        except OSError:
            status = b""
        took = time.perf_counter() - sent_at[i]
        if strict and b" 200 " not in status:
            raise RuntimeError(status)
        writer.close()
        parts = status.split()
        return took, int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0

    results = await asyncio.gather(*(read(i) for i in range(len(targets))))
    return {
        "first_write": first_write,
        "acks": [took for took, _ in results],
        "statuses": [status for _, status in results],
    }


def main(argv: list[str]) -> None:
    if argv[0] == "--targets":
        with open(argv[1]) as f:
            targets = [(int(port), p.encode()) for port, p in json.load(f)]
        strict = False
    else:
        with open(argv[1]) as f:
            targets = [(int(argv[0]), p.encode()) for p in json.load(f)]
        strict = True
    print(json.dumps(asyncio.run(burst(targets, strict))))


if __name__ == "__main__":
    main(sys.argv[1:])
