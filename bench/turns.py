"""Turn cost, throughput and concurrency of the real bot process, with figures printed.

    .venv/bin/python -m bench.turns            # all three parts
    .venv/bin/python -m bench.turns --only a   # just one part (a, b or c)

The bot runs as `python -m bot --mode http` in a subprocess, against an embedded Valkey
and local Slack and OpenAI stand-ins running in this process. CPU is the bot process's
own (user + system, from /proc); Redis round trips come from the bot's /metrics.
  (a) CPU ms and Redis round trips per turn at history lengths 10, 1,000 and 10,000
  (b) turns/s through Slack -> bot -> OpenAI -> Slack with an instant model
Each turn comes from a workspace of its own (see `team_of`), so Slack's per-workspace
rate limits, which the bot keeps to, don't set the pace.
  (c) 500 simultaneous mentions against a model that takes 2 s: ack p50/p99, time until
      all are answered, and the peak number of turns in flight
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from slack_sdk.signature import SignatureVerifier

from bench import bot_env, free_port, wait_until_healthy
from core import keys, tokens
from core.store import connect, start_embedded_valkey
from tests.scenarios.harness import event_body, mention, message, next_ts
from tests.standins.openai_api import OpenAIStandIn, Reply
from tests.standins.slack_api import SlackStandIn

SECRET = "bench-secret"
CLK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def team_of(thread_ts: str) -> str:
    """Each measured thread in a workspace of its own: Slack's rate limits, which the bot
    keeps to, are per workspace (and per channel), and this bench measures the bot."""
    return "T" + thread_ts.replace(".", "")


def in_team(event: dict, team: str) -> dict:
    return {**event, "team": team}


class Bench:
    def __init__(self) -> None:
        self.slack = SlackStandIn()
        self.openai = OpenAIStandIn()
        self.tmp = Path(tempfile.mkdtemp(prefix="tw-bench-"))
        self._seen = 0
        self._answered = 0

    async def start(self) -> None:
        await self.slack.start()
        await self.openai.start()
        self.valkey = start_embedded_valkey(self.tmp)
        self.redis = connect(self.valkey.connection_url)
        self.port = free_port()
        env = bot_env(
            slack_url=self.slack.url,
            openai_url=self.openai.url,
            secret=SECRET,
            REDIS_URL=self.valkey.connection_url,
            STREAMING_MODE="update",
            PORT=str(self.port),
        )
        self.proc = subprocess.Popen([sys.executable, "-m", "bot", "--mode", "http"], env=env)
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        self.url = f"http://127.0.0.1:{self.port}"
        await wait_until_healthy(self.session, self.url)

    async def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        await self.session.close()
        await self.redis.aclose()
        self.valkey.stop()
        await self.slack.close()
        await self.openai.close()

    async def metrics(self) -> dict:
        async with self.session.get(self.url + "/metrics") as r:
            return await r.json()

    @staticmethod
    def signed(event: dict) -> tuple[str, dict]:
        body = json.dumps(event_body(event, team=event.get("team", "T1")))
        ts = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": SignatureVerifier(SECRET).generate_signature(timestamp=ts, body=body),
        }
        return body, headers

    async def burst(self, events: list[dict]) -> tuple[float, list[float]]:
        """Send every event at once from a separate process (bench/burst.py).

        Requests are signed and connections opened before the clock starts, so the
        figure is the bot's ack latency, not the client's cost of making requests.
        """
        payloads = []
        for event in events:
            body, headers = self.signed(event)
            head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            payloads.append(
                f"POST /slack/events HTTP/1.1\r\nHost: bench\r\n{head}"
                f"Content-Length: {len(body.encode())}\r\nConnection: close\r\n\r\n{body}"
            )
        path = self.tmp / "burst.json"
        path.write_text(json.dumps(payloads))
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.burst", str(self.port), str(path), stdout=asyncio.subprocess.PIPE
        )
        out, _ = await proc.communicate()
        result = json.loads(out)
        return result["first_write"], result["acks"]

    async def send(self, event: dict) -> float:
        body, headers = self.signed(event)
        started = time.perf_counter()
        async with self.session.post(self.url + "/slack/events", data=body, headers=headers) as r:
            await r.read()
            assert r.status == 200, r.status
        return time.perf_counter() - started

    def answered(self) -> int:
        """Final answers Slack received (the edit that adds the footer), counted here so
        that waiting costs the bot no CPU."""
        calls = self.slack.calls
        for call in calls[self._seen :]:
            final = call.method in ("chat.update", "chat.postMessage")
            if final and "Persona:" in str(call.params.get("blocks")):
                self._answered += 1
        self._seen = len(calls)
        return self._answered

    async def wait_answered(self, n: int, timeout: float = 120) -> float:
        started = time.perf_counter()
        while time.perf_counter() - started < timeout:
            if self.answered() >= n:
                return time.perf_counter() - started
            await asyncio.sleep(0.002)
        raise TimeoutError(f"only {self.answered()} of {n} answered")

    async def prefill(self, thread_ts: str, n: int) -> None:
        conv = keys.conversation("tw", keys.conversation_id(team_of(thread_ts), "C1", thread_ts))
        words = "the quick brown fox jumps over the lazy dog " * 5
        msgs, toks = [], []
        for i in range(n):
            m = {"role": "user" if i % 2 == 0 else "assistant", "content": f"<@U1>: message {i} {words}"}
            m["tokens"] = tokens.count_message(m, "gpt-4.1-mini")
            msgs.append(json.dumps(m))
            toks.append(m["tokens"])
        for start in range(0, n, 1000):
            await self.redis.rpush(conv.msgs, *msgs[start : start + 1000])
            await self.redis.rpush(conv.toks, *toks[start : start + 1000])
        await self.redis.hset(conv.meta, mapping={"created": time.time(), "messages": n})


async def part_a(b: Bench, turns: int = 100, rounds: int = 5) -> None:
    """Every measured turn runs in a fresh thread holding exactly `length` messages
    (copied server-side from a template), so the history does not grow while we measure.
    The lengths take turns in rounds, so drift in the machine's speed hits them alike."""
    print("(a) bot CPU and Redis round trips per turn, by history length")
    print(f"    {'history':>8} {'CPU ms/turn':>12} {'Redis RT/turn':>14} {'msgs sent':>10}")
    lengths = (10, 1_000, 10_000)
    threads: dict[int, list[str]] = {}
    for length in lengths:
        template = next_ts()
        await b.prefill(template, length)
        src = keys.conversation("tw", keys.conversation_id(team_of(template), "C1", template))
        threads[length] = [next_ts() for _ in range(turns + 3)]
        for thread in threads[length]:
            dst = keys.conversation("tw", keys.conversation_id(team_of(thread), "C1", thread))
            for name in ("msgs", "toks", "meta"):
                await b.redis.copy(getattr(src, name), getattr(dst, name))
        for thread in threads[length][:3]:  # warm-up: imports, script load, connections
            done = b.answered()
            await b.send(in_team(message("warm up", thread_ts=thread), team_of(thread)))
            await b.wait_answered(done + 1)
    cpu = dict.fromkeys(lengths, 0.0)
    trips = dict.fromkeys(lengths, 0)
    sent = {}
    per_round = turns // rounds
    for r in range(rounds):
        for length in lengths:
            before = await b.metrics()
            done, cpu0 = b.answered(), _cpu_seconds(b.proc.pid)
            for i, thread in enumerate(threads[length][3 + r * per_round : 3 + (r + 1) * per_round]):
                await b.send(in_team(message(f"question {i}", thread_ts=thread), team_of(thread)))
                await b.wait_answered(done + i + 1)
            cpu[length] += _cpu_seconds(b.proc.pid) - cpu0
            after = await b.metrics()
            trips[length] += after["redis_round_trips"] - before["redis_round_trips"]
            sent[length] = len(b.openai.chat_requests()[-1]["messages"])
    for length in lengths:
        print(
            f"    {length:>8,} {cpu[length] * 1000 / turns:>12.2f} {trips[length] / turns:>14.2f} {sent[length]:>10}"
        )
    print(f"    ratio CPU(10,000) / CPU(10) = {cpu[10_000] / cpu[10]:.2f}")


async def part_b(b: Bench, n: int = 300, concurrency: int = 50) -> None:
    done = b.answered()
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with sem:
            await b.send(in_team(mention("throughput"), f"TB{i}"))

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    await b.wait_answered(done + n)
    elapsed = time.perf_counter() - started
    print(
        f"(b) {n} turns, {concurrency} at a time, instant model: {elapsed:.2f} s -> {n / elapsed:.0f} turns/s"
    )


async def part_c(b: Bench, n: int = 500) -> None:
    b.openai.default = lambda body: Reply(text="answered after two seconds", delay=2.0)
    done = b.answered()
    peak = 0

    async def watch() -> None:
        nonlocal peak
        while True:
            peak = max(peak, (await b.metrics())["in_flight"])
            await asyncio.sleep(0.1)

    watcher = asyncio.create_task(watch())
    events = [in_team(mention(f"simultaneous {i}", channel=f"C{i % 50}"), f"TC{i}") for i in range(n)]
    first_write, acks = await b.burst(events)
    await b.wait_answered(done + n)
    all_answered = time.time() - first_write
    watcher.cancel()
    acks_ms = sorted(a * 1000 for a in acks)
    p50 = statistics.median(acks_ms)
    p99 = acks_ms[int(len(acks_ms) * 0.99) - 1]
    m = await b.metrics()
    server = await b.metrics()
    print(
        f"(c) {n} simultaneous mentions, model takes 2 s: all answered in {all_answered:.2f} s; "
        f"ack p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {acks_ms[-1]:.1f} ms; "
        f"peak in flight {peak}; failed {m['failed']}"
    )
    print(
        f"    server-side ack (request in -> response out, inside the bot, all requests so far): "
        f"p50 {server.get('ack_p50_ms')} ms, p99 {server.get('ack_p99_ms')} ms, max {server.get('ack_max_ms')} ms"
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", choices=["a", "b", "c"])
    args = parser.parse_args()
    b = Bench()
    await b.start()
    try:
        if args.only in (None, "a"):
            await part_a(b)
        if args.only in (None, "b"):
            await part_b(b)
        if args.only in (None, "c"):
            await part_c(b)
    finally:
        await b.close()


if __name__ == "__main__":
    asyncio.run(main())
