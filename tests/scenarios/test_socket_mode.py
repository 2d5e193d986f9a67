"""Socket Mode: envelopes over a websocket opened through SLACK_API_URL."""

from __future__ import annotations

import asyncio
import time

import pytest

from bot.socket_mode import open_socket_mode
from core.settings import Settings
from tests.scenarios.harness import event_body, mention, message
from tests.standins.openai_api import Reply


@pytest.fixture
async def socket_bot(env, slack):
    bot = await open_socket_mode(Settings.from_env({**env, "SLACK_APP_TOKEN": "xapp-test"}, dotenv=False))
    yield bot
    await bot.close()


async def _idle(bot, timeout=10.0):
    deadline = time.monotonic() + timeout
    await asyncio.sleep(0.05)
    while bot.deps.tasks.in_flight and time.monotonic() < deadline:
        await asyncio.sleep(0.02)


async def test_socket_mode_connects_through_slack_api_url_and_answers(socket_bot, slack, openai_api):
    assert slack.calls_to("apps.connections.open")  # went to the stand-in, not slack.com
    event = mention("hello over the socket")
    envelope = await slack.send_envelope("events_api", event_body(event))
    ack = await slack.wait_ack(envelope)
    assert ack["envelope_id"] == envelope
    await _idle(socket_bot)
    [reply] = slack.messages(thread_ts=event["ts"])
    assert reply["text"] == "Echo: <@U1>: hello over the socket"


async def test_socket_mode_retry_attempt_gets_no_second_reply(socket_bot, slack, openai_api):
    event = message("dm me once", channel="D9", channel_type="im")
    body = event_body(event, event_id="EvRetry")
    first = await slack.send_envelope("events_api", body)
    await slack.wait_ack(first)
    second = await slack.send_envelope("events_api", body, retry_attempt=1, retry_reason="timeout")
    await slack.wait_ack(second)
    await _idle(socket_bot)
    assert len(openai_api.chat_requests()) == 1
    assert len(slack.messages(channel="D9")) == 1


async def test_an_event_is_in_redis_before_socket_mode_acks_it(socket_bot, slack, openai_api):
    """Slack never redelivers an acked event: it must be kept before the ack (bot/intake.py)."""
    from core import keys

    openai_api.enqueue(Reply(text="slow " * 50, chunk_size=5, chunk_delay=0.05))
    event = mention("keep me")
    envelope = await slack.send_envelope("events_api", event_body(event))
    await slack.wait_ack(envelope)
    store = socket_bot.deps.core.store
    conv = keys.conversation_id("T1", "C1", event["ts"])
    assert await store.redis.zscore(keys.open_turns(store.prefix), conv) is not None
    await _idle(socket_bot)
