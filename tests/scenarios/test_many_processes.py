"""Several bot processes are one bot: thread order, duplicates, a killed process's turns.

Two HTTP bots share the stand-ins and one Redis, as two processes behind a load
balancer would. The kill test runs one of them as a real subprocess and SIGKILLs it.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import time

import aiohttp

from core import history, keys
from tests.scenarios.harness import event_body, mention, message
from tests.standins.openai_api import Reply


def _answer_naming_the_question(body: dict) -> Reply:
    last = [m["content"] for m in body["messages"] if m["role"] == "user"][-1]
    return Reply(text=f"answer to [{last.split(': ', 1)[-1]}]", chunk_size=50, delay=0.1)


async def _wait(predicate, timeout: float = 15.0, what: str = "") -> float:
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < timeout, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


def _final_answers(slack, thread_ts: str) -> list[str]:
    return [m["text"] for m in slack.messages(thread_ts=thread_ts) if "…" not in m["text"]]


async def test_a_thread_fed_through_two_processes_is_answered_in_order(http_bot, slack, openai_api):
    a, b = await http_bot(), await http_bot()
    openai_api.default = _answer_naming_the_question
    first = mention("q0")
    await a.event(first)
    # As fast as the acks come back, alternating processes: each process queues its
    # message a moment after acking it, so they reach Redis in any order; the queue keeps
    # Slack's (by ts) for every message still waiting.
    for i in range(1, 12):
        await (a if i % 2 else b).event(message(f"q{i}", thread_ts=first["ts"]))
    await _wait(lambda: len(_final_answers(slack, first["ts"])) == 12, what="12 answers")
    await a.idle()
    await b.idle()

    answers = _final_answers(slack, first["ts"])
    assert [text.split("\n")[0] for text in answers] == [f"answer to [q{i}]" for i in range(12)]
    for k, request in enumerate(openai_api.chat_requests()):
        said = [m["content"] for m in request["messages"] if m["role"] != "system"]
        asked = [s for s in said if s.startswith("<@U1>")]
        assert asked == [f"<@U1>: q{i}" for i in range(k + 1)], k  # messages 1..k, in order
        assert len(said) == 2 * k + 1  # and every earlier answer between them
    conv = keys.conversation_id("T1", "C1", first["ts"])
    stored = await history.messages(a.deps.core.store, conv)
    assert [m["role"] for m in stored] == ["user", "assistant"] * 12


async def test_one_event_delivered_to_two_processes_is_answered_once(http_bot, slack, openai_api):
    a, b = await http_bot(), await http_bot()
    event = mention("hello twice")
    await asyncio.gather(a.event(event, event_id="EvSame"), b.event(event, event_id="EvSame"))
    await a.idle()
    await b.idle()
    assert len(openai_api.chat_requests()) == 1
    assert len(slack.messages(thread_ts=event["ts"])) == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _start_subprocess_bot(env: dict, port: int) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "--mode",
        "http",
        env={**os.environ, **env, "PORT": str(port), "LOG_LEVEL": "WARNING"},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    async with aiohttp.ClientSession() as session:
        for _ in range(300):
            try:
                async with session.get(f"http://127.0.0.1:{port}/healthz") as r:
                    if r.status == 200:
                        return proc
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
    proc.kill()
    raise AssertionError("the subprocess bot never became healthy")


async def test_a_killed_process_turn_is_finished_by_another_in_the_same_message(
    env, http_bot, slack, openai_api
):
    env = {**env, "TURN_LEASE_SECONDS": "1"}
    survivor = await http_bot(**env)
    port = _free_port()
    doomed = await _start_subprocess_bot(env, port)
    try:
        openai_api.enqueue(
            Reply(text="partial " * 200, chunk_size=8, chunk_delay=0.05),
            Reply(text="The recovered answer."),
        )
        event = mention("a question for the doomed process")
        sent = await survivor.post.__func__(  # signed like Slack signs it, to the subprocess
            type(survivor)(env={}, url=f"http://127.0.0.1:{port}", session=survivor.session),
            "/slack/events",
            json.dumps(event_body(event)),
            "application/json",
        )
        assert sent.status == 200
        await _wait(
            lambda: any("partial" in m["text"] for m in slack.messages(thread_ts=event["ts"])),
            what="the partial answer",
        )
        doomed.kill()  # SIGKILL: no shutdown, no hand-over
        killed_at = time.monotonic()
        await doomed.wait()

        await _wait(
            lambda: any("recovered answer" in m["text"] for m in slack.messages(thread_ts=event["ts"])),
            timeout=10,
            what="the recovered answer",
        )
        recovery = time.monotonic() - killed_at
        await survivor.idle()
    finally:
        if doomed.returncode is None:
            doomed.kill()
    shown = slack.messages(thread_ts=event["ts"])
    assert len(shown) == 1, shown  # the partial answer was replaced, not followed by a second
    assert "partial" not in shown[0]["text"] and "The recovered answer." in shown[0]["text"]
    assert recovery < 1 + 2, recovery  # the lease, plus a scan interval, plus the answer
    conv = keys.conversation_id("T1", "C1", event["ts"])
    stored = await history.messages(survivor.deps.core.store, conv)
    assert [m["role"] for m in stored] == ["user", "assistant"]
    assert stored[1]["content"] == "The recovered answer."


async def test_an_event_acked_by_a_process_that_died_before_queueing_it_is_answered(
    env, http_bot, slack, openai_api
):
    from core import turn_queue

    survivor = await http_bot(TURN_LEASE_SECONDS="1")
    event = mention("acked, then the process died")
    body = event_body(event)
    conv = keys.conversation_id("T1", "C1", event["ts"])
    # What the dead process did before its ack, and nothing after it.
    await turn_queue.accept(
        survivor.deps.core.store,
        [(conv, f"event:{body['event_id']}", event["ts"], json.dumps(body))],
        lease_ms=1000,
    )
    took = await _wait(lambda: len(_final_answers(slack, event["ts"])) == 1, timeout=10, what="the answer")
    assert took < 1 + 1.5  # the lease, a scan, the answer
    await survivor.idle()
    assert len(openai_api.chat_requests()) == 1
    assert "acked, then the process died" in openai_api.chat_requests()[0]["messages"][-1]["content"]


async def test_an_event_is_in_redis_before_http_mode_acks_it(http_bot, slack, openai_api):
    """Slack never redelivers an acked event: it must be kept before the ack (bot/intake.py)."""
    bot = await http_bot()
    event = mention("keep me")
    sent = await bot.event(event)
    assert sent.status == 200
    store = bot.deps.core.store
    conv = keys.conversation_id("T1", "C1", event["ts"])
    # the turn itself starts 20 ms after the ack, so this is what the ack waited for
    assert await store.redis.zscore(keys.open_turns(store.prefix), conv) is not None
    assert await store.redis.hlen(keys.conversation(store.prefix, conv).inbox) == 1
    await bot.idle()
    assert await store.redis.hlen(keys.conversation(store.prefix, conv).inbox) == 0  # queued


async def test_a_message_waiting_behind_a_thread_command_is_answered_at_once(http_bot, slack, openai_api):
    """`@bot help` and a follow-up acked together: the follow-up waits for the earlier
    command, and is answered as soon as the command is done, not at the next scan."""
    bot = await http_bot()
    first = mention("start")
    await bot.event(first)
    await bot.idle()
    command = mention("help", thread_ts=first["ts"])
    follow_up = message("and then?", thread_ts=first["ts"])
    await asyncio.gather(bot.event(command), bot.event(follow_up))
    took = await _wait(lambda: len(_final_answers(slack, first["ts"])) == 3, timeout=5, what="the follow-up")
    assert took < 2  # a recovery scan would take the 8 s lease
    await bot.idle()


async def test_a_process_shutting_down_hands_its_queued_turns_over_at_once(http_bot, slack, openai_api):
    """SIGTERM (uvicorn's shutdown): the turn in hand is finished, the queue behind it is
    handed over, and another process answers it without waiting for the lease to run out."""
    leaving, staying = await http_bot(), await http_bot()
    openai_api.default = _answer_naming_the_question
    openai_api.enqueue(Reply(text="answer to [q0]", chunk_size=4, chunk_delay=0.05))  # ~0.4 s
    first = mention("q0")
    await leaving.event(first)
    await _wait(lambda: slack.messages(thread_ts=first["ts"]), what="the first answer starting")
    for i in (1, 2):
        await leaving.event(message(f"q{i}", thread_ts=first["ts"]))
    await leaving.close()  # finishes q0, hands q1 and q2 over
    closed_at = time.monotonic()
    await _wait(lambda: len(_final_answers(slack, first["ts"])) == 3, timeout=6, what="3 answers")
    assert time.monotonic() - closed_at < 4  # a scan interval, not the 8 s lease
    await staying.idle()
    answers = [text.split("\n")[0] for text in _final_answers(slack, first["ts"])]
    assert answers == ["answer to [q0]", "answer to [q1]", "answer to [q2]"]
    assert staying.deps.stats.answered == 2  # q1 and q2 were handed over, not drained
