"""Members' latency while an admin validates a large dataset, with figures printed.

    .venv/bin/python -m bench.admin_load                  # both parts
    .venv/bin/python -m bench.admin_load --only offline   # just the timings in this process
    .venv/bin/python -m bench.admin_load --only live      # just the bot under load
    .venv/bin/python -m bench.admin_load --examples 30000 --rate 20

(offline) Seconds for `validate_dataset` and for `near_duplicates` on 1,536-dimension
    float32 vectors (text-embedding-3-small's size) with planted near duplicates, at
    20,000 and 30,000 examples; the best of a few runs, as the machine is shared.
(live) The real bot (`python -m bot --mode http`, as in bench/turns.py) against an
    embedded Valkey and the Slack and OpenAI stand-ins. An admin runs `/finetune validate`
    on an uploaded JSONL of `--examples` examples, with screening on (moderation and
    embeddings, 1,536 dimensions like the real model), while mentions arrive at `--rate`
    a second from a separate process (so the stand-ins' own work can't delay reading
    acks). Printed: ack latency of the mentions sent while the validation ran (and
    before it, for comparison), how long those mentions took to be answered, and how
    long the validation took. The target is an ack p99 under 100 ms during validation.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import json
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

import aiohttp
import numpy as np
from aiohttp import web
from slack_sdk.signature import SignatureVerifier

from bench import bot_env, free_port, wait_until_healthy
from core.store import start_embedded_valkey
from tests.scenarios.harness import event_body, mention
from tests.standins import openai_api
from tests.standins.openai_api import OpenAIStandIn
from tests.standins.slack_api import SlackStandIn

SECRET = "bench-secret"
ADMIN = "UADMIN"
DIMENSIONS = 1536  # text-embedding-3-small's default, what screening asks for

_WORDS = """the a to of and in is it you that for on with as are this be can your have not or from
by at an will if do all we my more when which use so about how what there out up time account
password settings open click page choose reset email team billing invoice plan upgrade user admin
channel message thread reply bot help support question answer please thanks sorry error issue fix
update install app workspace file upload download share link access permission role manage profile
name data export import report dashboard chart filter search result list item order payment card
refund cancel subscription trial free price cost month year week day hour minute second today
yesterday server network connection timeout retry restart log debug version release feature
request bug security login logout session token key secret api integration webhook notification
alert calendar meeting invite guest member owner domain address phone mobile desktop browser
window screen button menu tab field value option default custom template theme language region
zone backup restore delete archive history audit policy rule limit quota usage storage""".split()
SYSTEM = (
    "You are Acme's friendly support assistant. Answer briefly and accurately, point to the "
    "relevant settings page, and never invent features that do not exist."
)


def _sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(n)).capitalize() + "."


def dataset(n: int, seed: int = 1) -> tuple[str, int]:
    """A support-bot JSONL of `n` examples (about 1.1 KB each); one in 200 is a copy of an
    earlier example with one word changed, a near duplicate. Returns it and that count."""
    rng = random.Random(seed)
    lines: list[dict] = []
    planted = 0
    for i in range(n):
        if i > 10 and i % 200 == 0:
            twin = json.loads(json.dumps(lines[rng.randrange(i)]))
            twin["messages"][2]["content"] += " Thanks!"
            lines.append(twin)
            planted += 1
            continue
        user = " ".join(_sentence(rng, rng.randint(8, 16)) for _ in range(rng.randint(2, 4)))
        answer = " ".join(_sentence(rng, rng.randint(10, 20)) for _ in range(rng.randint(4, 10)))
        lines.append(
            {
                "messages": [
                    {"role": "system", "content": SYSTEM},
                    {"role": "user", "content": f"{user} (ticket {i})"},
                    {"role": "assistant", "content": answer},
                ]
            }
        )
    return "".join(json.dumps(e) + "\n" for e in lines), planted


def _figures(values: list[float]) -> str:
    if not values:
        return "none"
    ordered = sorted(values)
    p99 = ordered[max(0, int(len(ordered) * 0.99) - 1)]
    return f"p50 {statistics.median(ordered):.1f} ms, p99 {p99:.1f} ms, max {ordered[-1]:.1f} ms (n={len(ordered)})"


# -- offline -----------------------------------------------------------------------------


def _best(runs: int, call) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(runs):
        started = time.perf_counter()
        result = call()
        best = min(best, time.perf_counter() - started)
    return best, result


def part_offline(sizes: tuple[int, ...] = (20_000, 30_000), runs: int = 2) -> None:
    from core.finetune.dedupe import near_duplicates
    from core.finetune.validate import valid_examples, validate_dataset

    print("(offline) seconds, best of", runs)
    for n in sizes:
        text, _ = dataset(n)
        validate_dataset(text[:10_000])  # load the encoding first
        took, report = _best(runs, lambda text=text: validate_dataset(text))
        parsed, _ = _best(runs, lambda text=text: valid_examples(text))
        print(
            f"    {n:>6,} examples ({len(text) / 1e6:.0f} MB): validate_dataset {took:.2f} s, "
            f"valid_examples {parsed:.2f} s, {report.total_tokens.mean:.0f} tokens/example"
        )
        rng = np.random.default_rng(n)
        vectors = rng.standard_normal((n, DIMENSIONS), dtype=np.float32)
        sources = rng.choice(n, 100, replace=False)
        targets = rng.choice(np.setdiff1d(np.arange(n), sources), 100, replace=False)
        vectors[targets] = vectors[sources] + 0.15 * rng.standard_normal((100, DIMENSIONS), dtype=np.float32)
        examples = [{"messages": [{"role": "user", "content": str(i)}]} for i in range(n)]
        took, pairs = _best(runs, lambda e=examples, v=vectors: near_duplicates(e, v, 0.95))
        planted = {(min(a, b), max(a, b)) for a, b in zip(sources.tolist(), targets.tolist(), strict=True)}
        found = {(i, j) for i, j, _ in pairs}
        print(
            f"    {n:>6,} x {DIMENSIONS} float32: near_duplicates {took:.2f} s, "
            f"{len(planted & found)} of {len(planted)} planted pairs found, {len(found - planted)} others"
        )


# -- live --------------------------------------------------------------------------------


class EmbeddingsStandIn(OpenAIStandIn):
    """The OpenAI stand-in with embeddings of the real model's size, made fast enough to
    serve 20,000 texts: the same signed hashed bag of words, but with numpy, a word
    cache, and in a worker thread so this process keeps serving the bot's other calls."""

    def __init__(self) -> None:
        super().__init__()
        self._slots: dict[str, tuple[int, float]] = {}
        self.embedded = 0

    def _slot(self, word: str, dims: int) -> tuple[int, float]:
        slot = self._slots.get(word)
        if slot is None:
            vector = openai_api._embed(word, dims)  # one non-zero slot: the word's
            index = int(np.flatnonzero(vector)[0])
            slot = self._slots[word] = (index, float(np.sign(vector[index])))
        return slot

    def _vectors(self, texts: list[str], dims: int) -> np.ndarray:
        out = np.zeros((len(texts), dims), dtype=np.float32)
        for row, text in enumerate(texts):
            slots = [self._slot(w, dims) for w in re.findall(r"\w+", text.lower())]
            if slots:
                index, sign = zip(*slots, strict=True)
                out[row] = np.bincount(index, weights=sign, minlength=dims)
        norms = np.linalg.norm(out, axis=1)
        out[norms == 0, 0] = 1.0
        return out / np.where(norms == 0, 1.0, norms)[:, None]

    async def _embeddings(self, request: web.Request) -> web.Response:
        body = request[openai_api._JSON_BODY] or {}
        raw = body.get("input", "")
        texts = [raw] if isinstance(raw, str) else [str(x) for x in raw]
        dims = int(body.get("dimensions") or DIMENSIONS)
        vectors = await asyncio.to_thread(self._vectors, texts, dims)
        self.embedded += len(texts)
        if body.get("encoding_format") == "base64":
            data = [base64.b64encode(v.astype("<f4").tobytes()).decode() for v in vectors]
        else:
            data = vectors.tolist()
        return web.json_response(
            {
                "object": "list",
                "data": [{"object": "embedding", "index": i, "embedding": e} for i, e in enumerate(data)],
                "model": body.get("model", "text-embedding-3-small"),
                "usage": {"prompt_tokens": len(texts), "total_tokens": len(texts)},
            }
        )


def _signed_request(path: str, body: str, content_type: str) -> bytes:
    ts = str(int(time.time()))
    signature = SignatureVerifier(SECRET).generate_signature(timestamp=ts, body=body)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: {content_type}\r\n"
        f"X-Slack-Request-Timestamp: {ts}\r\nX-Slack-Signature: {signature}\r\n"
        f"Content-Length: {len(body.encode())}\r\nConnection: close\r\n\r\n"
    )
    return (head + body).encode()


async def pacer(port: int, rate: float) -> None:
    """Send signed mentions at `rate` a second until stdin closes; print each one's send
    time (monotonic, the same clock in every process) and ack seconds, as JSON.

    Garbage collection is off here: a full collection in this process (tens of ms with
    the SDKs imported) would be counted as a slow ack of the bot's.
    """
    gc.collect()
    gc.disable()
    results: list[tuple[int, float, float]] = []
    tasks: set[asyncio.Task] = set()

    async def one(k: int) -> None:
        event = mention(f"load-{k:06d} how do I reset my password?", user=f"U{k % 50}", channel=f"C{k % 10}")
        payload = _signed_request("/slack/events", json.dumps(event_body(event)), "application/json")
        sent = time.monotonic()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(payload)
        status = await reader.readline()
        took = time.monotonic() - sent
        writer.close()
        if b" 200 " not in status:
            raise RuntimeError(status)
        results.append((k, sent, took))

    stop = asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    started = time.monotonic()
    k = 0
    while not stop.done():
        task = asyncio.create_task(one(k))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        k += 1
        await asyncio.sleep(max(0.0, started + k / rate - time.monotonic()))
    await asyncio.gather(*tasks)
    print(json.dumps(results))


class Live:
    def __init__(self, n: int, rate: float, debug_loop: bool = False) -> None:
        self.n, self.rate, self.debug_loop = n, rate, debug_loop
        self.slack = SlackStandIn()
        self.openai = EmbeddingsStandIn()
        self.tmp = Path(tempfile.mkdtemp(prefix="tw-admin-bench-"))

    async def start(self) -> None:
        await self.slack.start()
        await self.openai.start()
        self.valkey = start_embedded_valkey(self.tmp)
        self.port = free_port()
        env = bot_env(
            slack_url=self.slack.url,
            openai_url=self.openai.url,
            secret=SECRET,
            REDIS_URL=self.valkey.connection_url,
            STREAMING_MODE="update",
            ADMIN_USER_IDS=ADMIN,
            FINETUNE_SCREENING="true",
            PORT=str(self.port),
        )
        if self.debug_loop:  # asyncio logs every callback that holds the loop over 100 ms
            env["PYTHONASYNCIODEBUG"] = "1"
        self.proc = subprocess.Popen([sys.executable, "-m", "bot", "--mode", "http"], env=env)
        self.session = aiohttp.ClientSession()
        self.url = f"http://127.0.0.1:{self.port}"
        await wait_until_healthy(self.session, self.url)

    async def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        await self.session.close()
        self.valkey.stop()
        await self.slack.close()
        await self.openai.close()

    async def command(self, text: str, key: str) -> None:
        form = {
            "token": "legacy",
            "team_id": "T1",
            "team_domain": "example",
            "channel_id": "C1",
            "channel_name": "general",
            "user_id": ADMIN,
            "user_name": "admin",
            "command": "/finetune",
            "text": text,
            "api_app_id": "A1",
            "response_url": self.slack.response_url(key),
            "trigger_id": "trig",
        }
        body = urllib.parse.urlencode(form)
        ts = str(int(time.time()))
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": SignatureVerifier(SECRET).generate_signature(timestamp=ts, body=body),
        }
        async with self.session.post(self.url + "/slack/events", data=body, headers=headers) as r:
            assert r.status == 200, r.status

    def stages(self, began: float, ended: float) -> list[tuple[str, float, float]]:
        """The validation's stages, as seen from the stand-ins: (name, start, end) in monotonic time."""
        openai = [r for r in self.openai.requests if began <= r.at <= ended]
        moderations = [r.at for r in openai if r.path.endswith("/moderations")] or [began]
        embeddings = [r.at for r in openai if r.path.endswith("/embeddings")] or [moderations[-1]]
        return [
            ("offline checks", began, min(moderations)),
            ("moderation screen", min(moderations), max(moderations)),
            ("embedding", max(moderations), max(embeddings)),
            ("pair search, save, post", max(embeddings), ended),
        ]

    def answers(self) -> dict[int, float]:
        """Mention number -> when its final answer (the edit with the footer) reached Slack."""
        done = {}
        for call in self.slack.calls:
            if call.method == "chat.update" and "Persona:" in str(call.params.get("blocks")):
                m = re.search(r"load-(\d{6})", str(call.params))
                if m:
                    done.setdefault(int(m.group(1)), call.at)
        return done

    async def run(self) -> None:
        text, planted = dataset(self.n)
        self.slack.add_file("support.jsonl", text.encode(), "C1", user=ADMIN)
        print(
            f"(live) /finetune validate of {self.n:,} examples ({len(text) / 1e6:.0f} MB, {planted} planted "
            f"near duplicates) while mentions arrive at {self.rate:g}/s"
        )
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.admin_load",
            "--pacer",
            str(self.port),
            "--rate",
            str(self.rate),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        await asyncio.sleep(8)  # mentions alone first: warm-up, then the figures to compare with
        warm = time.monotonic() - 3
        began = time.monotonic()
        await self.command("validate", "validate")
        [reply] = await self.slack.wait_response("validate", timeout=900)
        ended = time.monotonic()
        await asyncio.sleep(2)
        proc.stdin.close()
        out, _ = await proc.communicate()
        sent = json.loads(out)
        deadline = time.monotonic() + 120
        while len(self.answers()) < len(sent) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        answers = self.answers()

        before = [took * 1000 for _, at, took in sent if warm <= at < began]
        during = [(k, at, took) for k, at, took in sent if began <= at <= ended]
        print(f"    validation took {ended - began:.1f} s; reply: {reply['text'][:110]!r}")
        stages = "; ".join(
            f"{name} {a - began:.1f}-{b - began:.1f}" for name, a, b in self.stages(began, ended)
        )
        print(f"    stages (s after the command): {stages}")
        print(f"    ack of mentions before it:  {_figures(before)}")
        print(f"    ack of mentions during it:  {_figures([took * 1000 for _, _, took in during])}")
        for name, start, stop in self.stages(began, ended):
            acks = [took * 1000 for _, at, took in during if start <= at < stop]
            print(f"      while {name:<22} {_figures(acks)}")
        slowest = sorted(during, key=lambda m: -m[2])[:8]
        print(
            "      slowest acks (s after the command: ms): "
            + ", ".join(f"{at - began:.1f}: {took * 1000:.0f}" for _, at, took in slowest)
        )
        calm = [(answers[k] - at) * 1000 for k, at, _ in sent if warm <= at < began and k in answers]
        print(f"    answer of mentions before it: {_figures(calm)}")
        answered = [(answers[k] - at) * 1000 for k, at, _ in during if k in answers]
        print(
            f"    answer of mentions during it: {_figures(answered)}; unanswered {len(during) - len(answered)}"
        )
        report = next((u for u in self.slack.uploads if u.filename.endswith("-report.txt")), None)
        if report is not None:
            found = re.search(r"\[near_duplicate\] x(\d+)", report.content.decode())
            print(
                f"    report: {found.group(1) if found else 0} near-duplicate warnings, "
                f"{self.openai.embedded:,} texts embedded"
            )
        async with self.session.get(self.url + "/metrics") as r:
            m = await r.json()
        print(
            f"    bot's own ack figures (all requests): p50 {m.get('ack_p50_ms')} ms, p99 {m.get('ack_p99_ms')} ms, "
            f"max {m.get('ack_max_ms')} ms; failed turns {m.get('failed')}"
        )


async def part_live(n: int, rate: float, debug_loop: bool = False) -> None:
    live = Live(n, rate, debug_loop)
    await live.start()
    try:
        await live.run()
    finally:
        await live.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", choices=["offline", "live"])
    parser.add_argument("--examples", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--debug-loop", action="store_true", help="bot logs callbacks over 100 ms")
    parser.add_argument("--pacer", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.pacer:
        await pacer(args.pacer, args.rate)
        return
    if args.only in (None, "offline"):
        part_offline()
    if args.only in (None, "live"):
        await part_live(args.examples, args.rate, args.debug_loop)


if __name__ == "__main__":
    asyncio.run(main())
