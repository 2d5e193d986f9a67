"""Attacks on the HTTP routes anyone on the internet can reach: /slack/events and /openai/webhooks.

Each test drives the real ASGI app under uvicorn. Raw sockets stand in for senders that
don't play by HTTP client rules: a body that claims 50 MB, or never says how long it is.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import urllib.parse

import pytest

from bot.http import MAX_BODY_BYTES
from tests.scenarios.harness import HttpBot, mention

WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


async def _status_line(reader: asyncio.StreamReader, timeout: float = 5.0) -> int:
    line = await asyncio.wait_for(reader.readline(), timeout)
    assert line.startswith(b"HTTP/1.1 "), line
    return int(line.split()[1])


async def _open(bot: HttpBot) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = bot.url.removeprefix("http://").split(":")
    return await asyncio.open_connection(host, int(port))


async def _claims_50_mb(bot: HttpBot, path: str) -> int:
    """Send headers announcing 50 MB, then 64 KiB of it, and wait for an answer."""
    reader, writer = await _open(bot)
    try:
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {50 * 1024 * 1024}\r\n\r\n".encode()
        )
        writer.write(b"[" * 65536)
        await writer.drain()
        return await _status_line(reader)
    finally:
        writer.close()


async def _chunked_past_the_cap(bot: HttpBot, path: str) -> tuple[int, int]:
    """Stream a body with no length, 64 KiB at a time, until answered: (status, bytes sent)."""
    reader, writer = await _open(bot)
    sent = 0
    try:
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n".encode()
        )
        chunk = b"x" * 65536
        answer = asyncio.ensure_future(_status_line(reader, timeout=30))
        while not answer.done() and sent < 8 * MAX_BODY_BYTES:
            try:
                writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                await writer.drain()
            except ConnectionError:
                break
            sent += len(chunk)
            await asyncio.sleep(0.005)
        return await answer, sent
    finally:
        writer.close()


async def _post_bytes(bot: HttpBot, body: bytes, content_type: str, *, timestamp: str | None = None) -> int:
    """POST raw bytes signed as Slack signs them (HMAC over the bytes, not text)."""
    ts = timestamp or str(int(time.time()))
    digest = hmac.new(bot.secret.encode(), b"v0:" + ts.encode() + b":" + body, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": f"v0={digest}",
    }
    async with bot.session.post(bot.url + "/slack/events", data=body, headers=headers) as response:
        return response.status


def _sign_webhook(body: str, secret: str = WEBHOOK_SECRET) -> dict:
    ts = str(int(time.time()))
    key = base64.b64decode(secret.removeprefix("whsec_"))
    sig = base64.b64encode(hmac.new(key, f"msg_1.{ts}.{body}".encode(), hashlib.sha256).digest()).decode()
    return {"webhook-id": "msg_1", "webhook-timestamp": ts, "webhook-signature": f"v1,{sig}"}


async def test_unsigned_50_mb_post_is_refused_with_413_before_it_is_read(http_bot, slack, openai_api):
    """An unsigned POST announcing 50 MB is refused with 413 on its headers alone.

    The sender has sent 64 KiB and is still "uploading": the answer arrives anyway, so
    the server never waited for, buffered or parsed the rest.
    """
    bot = await http_bot()
    assert await _claims_50_mb(bot, "/slack/events") == 413
    ok = await bot.event(mention("still answering?"))
    assert ok.status == 200


async def test_body_without_length_is_cut_off_at_the_cap(http_bot, slack, openai_api):
    """A chunked body that never ends is answered 413 once it passes 1 MiB, not read to the end."""
    bot = await http_bot()
    status, sent = await _chunked_past_the_cap(bot, "/slack/events")
    assert status == 413
    assert sent < 2 * MAX_BODY_BYTES


async def test_unsigned_requests_are_refused_before_their_body_is_parsed(http_bot, slack, openai_api):
    """Unsigned, forged, stale or garbled-signature requests get 401 whatever their body holds.

    A body nested 100,000 deep, or a form whose payload isn't JSON, used to be parsed
    before its signature was checked, and answered 500.
    """
    bot = await http_bot()
    deep = "[" * 100_000
    form = urllib.parse.urlencode({"payload": "{not json"})
    event = json.dumps({"type": "event_callback", "event": {"type": "app_mention"}})
    assert (await bot.post("/slack/events", deep, "application/json", sign=False)).status == 401
    assert (
        await bot.post("/slack/events", form, "application/x-www-form-urlencoded", sign=False)
    ).status == 401
    forged = {"X-Slack-Request-Timestamp": str(int(time.time())), "X-Slack-Signature": "v0=00"}
    assert (
        await bot.post("/slack/events", deep, "application/json", headers=forged, sign=False)
    ).status == 401
    garbled = {"X-Slack-Request-Timestamp": "soon", "X-Slack-Signature": "v0=00"}
    assert (
        await bot.post("/slack/events", event, "application/json", headers=garbled, sign=False)
    ).status == 401
    stale = str(int(time.time()) - 600)  # a replay of a request recorded ten minutes ago
    assert await _post_bytes(bot, event.encode(), "application/json", timestamp=stale) == 401
    assert not slack.calls_to("chat.postMessage")
    # Slack's SSL check is the one request it sends unsigned; it still gets its empty 200
    ssl_check = await bot.post(
        "/slack/events", "ssl_check=1&token=legacy", "application/x-www-form-urlencoded", sign=False
    )
    assert (ssl_check.status, ssl_check.body) == (200, "")


@pytest.mark.parametrize(
    "body, content_type",
    [
        pytest.param(b"[" * 100_000, "application/json", id="nested-100000-deep"),
        pytest.param(
            b'{"type": "event_callback", "event": {"type": "app_mention", "x": %s}}'
            % (b"[" * 200 + b"]" * 200),
            "application/json",
            id="parses-but-200-deep",
        ),
        pytest.param(b'{"type": "event_callback", "event": {', "application/json", id="truncated-json"),
        pytest.param(b"[1, 2]", "application/json", id="json-array"),
        pytest.param(
            b'{"type": "event_callback", "authorizations": "x"}', "application/json", id="wrong-types"
        ),
        pytest.param(b"payload=%7Bnot+json", "application/x-www-form-urlencoded", id="form-payload-not-json"),
        pytest.param(b'{"type": "\xff\xfe"}', "application/json", id="not-utf8"),
    ],
)
async def test_signed_malformed_body_gets_400_not_500(http_bot, slack, body, content_type):
    """A validly signed but malformed body (leaked secret, or a proxy mangling it) gets 400.

    The bot goes on answering Slack's real requests, URL verification included.
    """
    bot = await http_bot()
    assert await _post_bytes(bot, body, content_type) == 400
    challenge = json.dumps({"type": "url_verification", "challenge": "abc123", "token": "legacy"})
    verified = await bot.post("/slack/events", challenge, "application/json")
    assert verified.status == 200 and "abc123" in verified.body
    event = mention("hello after the junk")
    assert (await bot.event(event)).status == 200
    await bot.idle()
    assert slack.messages(thread_ts=event["ts"])


async def test_webhook_announcing_50_mb_is_refused_with_413_before_it_is_read(http_bot, slack, openai_api):
    """A POST to /openai/webhooks announcing 50 MB is refused on its headers, like Slack's route."""
    bot = await http_bot(OPENAI_WEBHOOK_SECRET=WEBHOOK_SECRET)
    assert await _claims_50_mb(bot, "/openai/webhooks") == 413
    status, sent = await _chunked_past_the_cap(bot, "/openai/webhooks")
    assert status == 413 and sent < 2 * MAX_BODY_BYTES


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param('{"type": "fine_tuning.job.succeeded", "id": "evt_1"}', id="job-event-without-data"),
        pytest.param('{"type": "fine_tuning.job.failed", "data": ["ftjob-1"]}', id="data-not-an-object"),
        pytest.param("[]", id="not-an-object"),
        pytest.param(
            '{"type": "fine_tuning.job.succeeded", "data": {"id": "ftjob-1", "x": %s}}'
            % ("[" * 200 + "]" * 200),
            id="parses-but-200-deep",
        ),
    ],
)
async def test_signed_malformed_webhook_gets_400_not_500(http_bot, slack, openai_api, payload):
    """A correctly signed webhook whose body is not an OpenAI event is refused with 400."""
    bot = await http_bot(OPENAI_WEBHOOK_SECRET=WEBHOOK_SECRET)
    sent = await bot.post(
        "/openai/webhooks", payload, "application/json", headers=_sign_webhook(payload), sign=False
    )
    assert sent.status == 400
    unsigned = await bot.post("/openai/webhooks", payload, "application/json", sign=False)
    assert unsigned.status == 400 and "invalid signature" in unsigned.body
