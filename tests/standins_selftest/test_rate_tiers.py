"""Self-tests for the stand-in's Slack rate-tier enforcement, driven through the real slack_sdk.

Benches and tests rely on it to prove the bot stays within Slack's budgets, so it must reject
exactly what is over a bucket, answer the way slack_sdk expects (429 + Retry-After), leave
state untouched when it rejects, and stay out of the way when switched off. The clients here
have no retry handler, so every 429 surfaces as a SlackApiError.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from tests.standins.slack_api import TIER_PER_MINUTE, SlackStandIn, burst_capacity


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    stand_in = SlackStandIn(enforce_tiers=True)
    await stand_in.start()
    yield stand_in
    await stand_in.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def client(slack: SlackStandIn, session: aiohttp.ClientSession, token: str = "xoxb-test") -> AsyncWebClient:
    return AsyncWebClient(base_url=slack.url, token=token, session=session, retry_handlers=[])


async def outcomes(calls: list[Awaitable[object]]) -> list[int]:
    """HTTP status of each awaited call, in order (200 or the SlackApiError's status)."""
    statuses = []
    for call in calls:
        try:
            await call
            statuses.append(200)
        except SlackApiError as err:
            assert err.response["error"] == "ratelimited"
            statuses.append(err.response.status_code)
    return statuses


def test_burst_capacities() -> None:
    assert [burst_capacity(TIER_PER_MINUTE[t]) for t in (1, 2, 3, 4)] == [3, 3, 8, 16]


async def test_chat_update_over_tier3_burst_is_429_and_has_no_effect(
    slack: SlackStandIn, session: aiohttp.ClientSession
) -> None:
    web = client(slack, session)
    ts = (await web.chat_postMessage(channel="C1", text="v0"))["ts"]
    burst = int(burst_capacity(TIER_PER_MINUTE[3]))

    statuses = await outcomes([web.chat_update(channel="C1", ts=ts, text=f"v{i}") for i in range(1, 13)])
    assert statuses == [200] * burst + [429] * (12 - burst)
    assert slack.streamed_text(ts) == f"v{burst}"  # rejected edits never landed

    with pytest.raises(SlackApiError) as err:
        await web.chat_update(channel="C1", ts=ts, text="late")
    retry_after = err.value.response.headers["Retry-After"]
    assert retry_after.isdigit() and 1 <= int(retry_after) <= 2  # 50/min: ~1.2 s for one token
    assert err.value.response.data == {"ok": False, "error": "ratelimited"}

    assert slack.rate_limited_count("chat.update") == 12 - burst + 1
    assert slack.rate_limited_count() == slack.rate_limited_count("chat.update")
    assert all(c.failed for c in slack.rate_limited)
    assert len(slack.calls_to("chat.update")) == 13  # throttled calls are still recorded


async def test_post_message_is_limited_per_channel(
    slack: SlackStandIn, session: aiohttp.ClientSession
) -> None:
    web = client(slack, session)
    same = await outcomes([web.chat_postMessage(channel="C1", text=f"m{i}") for i in range(12)])
    assert same == [200] * 10 + [429, 429]
    assert [m["text"] for m in slack.messages(channel="C1")] == [f"m{i}" for i in range(10)]

    spread = await outcomes([web.chat_postMessage(channel=f"C{i}", text="hi") for i in range(2, 7)])
    assert spread == [200] * 5
    assert slack.rate_limited_count("chat.postMessage") == 2


async def test_buckets_are_per_workspace_token_and_exempt_methods_pass(
    slack: SlackStandIn, session: aiohttp.ClientSession
) -> None:
    a, b = client(slack, session, "xoxb-a"), client(slack, session, "xoxb-b")
    assert await outcomes([a.chat_postMessage(channel="C1", text="x") for _ in range(11)]) == [200] * 10 + [
        429
    ]
    assert await outcomes([b.chat_postMessage(channel="C1", text="x") for _ in range(3)]) == [200] * 3
    assert await outcomes([a.auth_test() for _ in range(30)]) == [200] * 30


async def test_enforcement_is_off_by_default_and_can_be_switched(session: aiohttp.ClientSession) -> None:
    async with SlackStandIn() as slack:
        web = client(slack, session)
        ts = (await web.chat_postMessage(channel="C1", text="v0"))["ts"]
        assert (
            await outcomes([web.chat_update(channel="C1", ts=ts, text=f"v{i}") for i in range(30)])
            == [200] * 30
        )
        assert await outcomes([web.chat_postMessage(channel="C1", text="x") for _ in range(10)]) == [200] * 10

        slack.enforce_rate_limits()  # switched on after start; Tier 2 bursts 3
        starts = [web.chat_startStream(channel="C1", thread_ts="1.0") for _ in range(4)]
        assert await outcomes(starts) == [200, 200, 200, 429]
        slack.enforce_rate_limits(False)
        starts = [web.chat_startStream(channel="C1", thread_ts="1.0") for _ in range(5)]
        assert await outcomes(starts) == [200] * 5
        assert slack.rate_limited_count() == 1


async def test_rate_limit_comes_before_injected_failures(
    slack: SlackStandIn, session: aiohttp.ClientSession
) -> None:
    web = client(slack, session)
    assert await outcomes([web.chat_postMessage(channel="C1", text="x") for _ in range(10)]) == [200] * 10
    slack.fail("chat.postMessage", error="channel_not_found")
    assert await outcomes([web.chat_postMessage(channel="C1", text="x")]) == [429]
    with pytest.raises(SlackApiError, match="channel_not_found"):  # the failure waited for this call
        await web.chat_postMessage(channel="C2", text="x")


async def test_limit_refills_over_time(slack: SlackStandIn, session: aiohttp.ClientSession) -> None:
    slack.enforce_rate_limits(scale=60)  # Tier 3 refills 50 calls per second: one every 20 ms
    web = client(slack, session)
    ts = (await web.chat_postMessage(channel="C1", text="v0"))["ts"]
    for i in range(100):
        if await outcomes([web.chat_update(channel="C1", ts=ts, text=f"drain{i}")]) == [429]:
            break
    else:
        pytest.fail("bucket never emptied")
    assert 8 <= i <= 30

    await asyncio.sleep(0.05)
    assert await outcomes([web.chat_update(channel="C1", ts=ts, text="after")]) == [200]
    assert slack.streamed_text(ts) == "after"
