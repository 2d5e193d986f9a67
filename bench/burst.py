"""Load generator for bench/turns.py part (c), in its own process.

Reads pre-signed HTTP requests (JSON list of strings) from a file, opens one connection
per request, writes them all at once and prints each request's time from its write to
the first response line, as JSON. Running apart from the Slack and OpenAI stand-ins
keeps their work from delaying the reading of acks.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time


async def main(port: int, path: str) -> None:
    with open(path) as f:
        payloads = [p.encode() for p in json.load(f)]
    conns = [await asyncio.open_connection("127.0.0.1", port) for _ in payloads]
    sent_at = []
    for (_, writer), payload in zip(conns, payloads, strict=True):
        writer.write(payload)
        sent_at.append(time.perf_counter())
    first_write = time.time()

    async def read(i: int) -> float:
        reader, writer = conns[i]
        status = await reader.readline()
        took = time.perf_counter() - sent_at[i]
        if b" 200 " not in status:
            raise RuntimeError(status)
        writer.close()
        return took

    acks = await asyncio.gather(*(read(i) for i in range(len(payloads))))
    print(json.dumps({"first_write": first_write, "acks": acks}))


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
