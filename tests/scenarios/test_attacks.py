"""Attack list: hostile input and private data, each driven through the real bot.

Every test is one attack (or one careless-admin mistake) from the hardening issue, named
for what must hold, in the issue's order:
  1. datasets leaking private conversations      5. Slack markup injection
  2. schemas that fetch URLs (SSRF) or crash     6. admin work stalling everyone
  3. user regexes that stall the bot             7. messages Slack would refuse
  4. HTTP bodies read before the signature       8. a newcomer's wrong .env
                                                 9. loose ends
Slack and OpenAI are the local stand-ins behind the real SDKs; Redis is real. The Slack
stand-in enforces Slack's block limits (`msg_blocks_too_long`, `invalid_blocks`), so a
message Slack would refuse fails here too. Items 8 (start-up refusing placeholders) and
the embedded Valkey's password and file modes (9) run the bot as a process, so they live
in tests/scenarios/test_startup.py and tests/core/test_store.py.
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

from bot import auth
from bot.http import MAX_BODY_BYTES
from core import keys
from core.finetune import store as ft
from tests.conftest import INTERNAL_SECRET, max_loop_lag
from tests.scenarios.blockkit import assert_valid_blocks
from tests.scenarios.harness import HttpBot, block_action, mention, message
from tests.scenarios.test_finetune import ADMIN, command, jsonl, stored_dataset
from tests.standins.openai_api import Reply

PRIVATE = "CPRIV"


def _private_channel(slack, members: list[str]) -> None:
    slack.channels[PRIVATE] = {"id": PRIVATE, "name": "secret", "is_private": True}
    slack.members[PRIVATE] = members


async def _rated(bot, slack, event: dict, key: str) -> None:
    """Someone asks, the bot answers, and another member rates the answer 👍."""
    await bot.event(event)
    await bot.idle()
    [reply] = slack.messages(channel=event["channel"], thread_ts=event["ts"])
    action = {"action_id": "feedback_good", "type": "button", "value": event["ts"]}
    payload = block_action(
        action, user="U2", response_url=slack.response_url(key), channel=event["channel"], message=reply
    )
    await bot.action(payload)
    await bot.idle()


async def _three_rated_conversations(bot, slack) -> None:
    await _rated(bot, slack, mention("public question about deploys"), "rate-public")
    await _rated(bot, slack, mention("private question about salaries", channel=PRIVATE), "rate-private")
    dm = message("dm question about my health", channel="D1", channel_type="im")
    await _rated(bot, slack, dm, "rate-dm")


TUNED = "ft:gpt-4.1-mini-2025-04-14:acme::x1"


async def _our_tuned_model(bot, dataset: str) -> None:
    """A job this workspace ran on `dataset`, which made TUNED."""
    job = ft.JobRecord("ftjob-ours", "T1", "C1", "1.0", dataset, "gpt-4.1-mini-2025-04-14", ADMIN)
    job.fine_tuned_model = TUNED
    await ft.save_job(bot.deps.core.store, job)


def _uploaded_text(slack, channel: str) -> str:
    return "\n".join(u.content.decode() for u in slack.uploads if u.channel_id == channel)


async def _ask_json(bot, slack, text: str, key: str = "r") -> None:
    await bot.command("/ask-json", text, response_url=slack.response_url(key))
    await bot.idle()


async def _refusal(slack, key: str = "r") -> str:
    [reply] = await slack.wait_response(key)
    assert reply["response_type"] == "ephemeral"
    return reply["text"]


def _remote_ref_schema(url: str) -> str:
    return json.dumps({"type": "object", "properties": {"x": {"$ref": f"{url}/x"}}})


def _nothing_leaked(slack) -> None:
    everything = json.dumps([slack.messages(), slack.responses])
    assert INTERNAL_SECRET not in everything


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


# -- 1. private conversations never leak into a channel through a dataset ----------------


async def test_dataset_built_in_a_public_channel_leaves_out_dms_and_private_channels(http_bot, slack):
    bot = await http_bot(ADMIN_USER_IDS=ADMIN)
    _private_channel(slack, [ADMIN, "U1", "U2"])
    await _three_rated_conversations(bot, slack)
    [reply] = await command(bot, slack, "dataset build name=all", "b")
    posted = _uploaded_text(slack, "C1")
    assert "public question about deploys" in posted
    assert "salaries" not in posted and "health" not in posted
    assert "Left out 1 from private or shared channels and 1 from DMs" in reply["text"]
    _, train, valid = await ft.load_dataset(bot.deps.core.store, "T1", "all")
    assert "salaries" not in train + valid and "health" not in train + valid


async def test_naming_a_private_channel_sends_the_dataset_to_the_admins_dm_only(http_bot, slack):
    bot = await http_bot(ADMIN_USER_IDS=f"{ADMIN},UADMIN2")
    _private_channel(slack, [ADMIN, "U1", "U2"])
    await _three_rated_conversations(bot, slack)
    [reply] = await command(bot, slack, f"dataset build <#{PRIVATE}|secret> name=secret", "b")
    assert "salaries" in _uploaded_text(slack, f"D{ADMIN}")
    assert "salaries" not in _uploaded_text(slack, "C1")
    assert not [m for m in slack.messages(channel="C1") if "Dataset" in m["text"]]
    assert "DM" in reply["text"]
    # an admin who isn't in the private channel can't pull its conversations at all
    uploads = len(slack.uploads)
    [refused] = await command(bot, slack, f"dataset build <#{PRIVATE}|secret> name=x", "c", user="UADMIN2")
    assert "not a member" in refused["text"] and len(slack.uploads) == uploads
    # DMs can never be named as a source
    [dm] = await command(bot, slack, "dataset build <#D1|dm> name=y", "named-dm")
    assert "never go into datasets" in dm["text"]


async def test_a_private_channels_own_dataset_stays_in_that_channel(http_bot, slack):
    bot = await http_bot(ADMIN_USER_IDS=ADMIN)
    _private_channel(slack, [ADMIN, "U1", "U2"])
    await _three_rated_conversations(bot, slack)
    await bot.command(
        "/finetune",
        "dataset build name=here",
        user=ADMIN,
        channel=PRIVATE,
        response_url=slack.response_url("b"),
    )
    await bot.idle(30)
    here = _uploaded_text(slack, PRIVATE)
    assert "salaries" in here and "deploys" in here and "health" not in here


async def test_eval_of_a_private_dataset_goes_to_the_admins_dm(http_bot, slack, openai_api):
    bot = await http_bot(ADMIN_USER_IDS=ADMIN)
    _private_channel(slack, [ADMIN])
    await stored_dataset(bot, name="priv")
    loaded = await ft.load_dataset(bot.deps.core.store, "T1", "priv")
    ds, train, valid = loaded
    ds.audience = PRIVATE
    await ft.save_dataset(bot.deps.core.store, "T1", ds, train, valid, replace=True)
    await _our_tuned_model(bot, "priv")
    await command(bot, slack, f"eval {TUNED} dataset=priv n=2 judge=off", "e")
    assert [m for m in slack.messages(channel=f"D{ADMIN}") if "Evaluation:" in m["text"]]
    assert not [m for m in slack.messages(channel="C1") if "Evaluation:" in m["text"]]
    assert [u for u in slack.uploads if u.channel_id == f"D{ADMIN}" and u.filename == "evaluation.txt"]


async def test_validate_refuses_a_file_link_shared_in_another_channel(http_bot, slack):
    bot = await http_bot(ADMIN_USER_IDS=ADMIN)
    elsewhere = slack.add_file("secret.jsonl", jsonl(12), channel=PRIVATE)
    [reply] = await command(bot, slack, f"validate {elsewhere['url_private']}", "v")
    assert "isn't shared in this channel" in reply["text"]
    assert slack.downloads == [] and slack.uploads == []


async def test_saving_over_an_existing_dataset_asks_first(http_bot, slack):
    bot = await http_bot(ADMIN_USER_IDS=ADMIN, FINETUNE_SCREENING="false")
    await stored_dataset(bot, name="support")
    slack.add_file("support.jsonl", jsonl(15), channel="C1")
    replies = await command(bot, slack, "validate", "v")
    ask = next(r for r in replies if "already exists" in json.dumps(r.get("blocks")))
    (old, *_) = await ft.load_dataset(bot.deps.core.store, "T1", "support")
    assert old.source == "test"  # nothing replaced yet
    [button] = [
        e
        for b in ask["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
        if e["action_id"] == "finetune_overwrite_confirm"
    ]
    payload = block_action(button, user=ADMIN, response_url=slack.response_url("ok"))
    await bot.action(payload)
    await bot.idle()
    [done] = await slack.wait_response("ok")
    assert "Replaced dataset `support`" in done["text"]
    (new, *_) = await ft.load_dataset(bot.deps.core.store, "T1", "support")
    assert new.source == "file:support.jsonl"


async def test_a_dataset_is_never_posted_in_a_channel_shared_with_another_company(http_bot, slack):
    bot = await http_bot(ADMIN_USER_IDS=ADMIN)
    slack.channels["CSHARED"] = {"id": "CSHARED", "name": "partner", "is_ext_shared": True}
    await _rated(bot, slack, mention("public question about deploys"), "rate-public")
    await bot.command(
        "/finetune",
        "dataset build name=x",
        user=ADMIN,
        channel="CSHARED",
        response_url=slack.response_url("b"),
    )
    await bot.idle(30)
    assert "deploys" not in _uploaded_text(slack, "CSHARED")
    assert "Left out 1 from private or shared channels" in (await slack.wait_response("b"))[0]["text"]
    await stored_dataset(bot, name="public")  # workspace-public content, asked for in the shared channel
    await _our_tuned_model(bot, "public")
    await bot.command(
        "/finetune",
        f"eval {TUNED} dataset=public n=1 judge=off",
        user=ADMIN,
        channel="CSHARED",
        response_url=slack.response_url("e"),
    )
    await bot.idle(30)
    assert not [m for m in slack.messages(channel="CSHARED") if "Evaluation" in m["text"]]
    assert [m for m in slack.messages(channel=f"D{ADMIN}") if "Evaluation" in m["text"]]


async def test_another_workspaces_tuned_model_cant_be_evaluated_or_used(http_bot, slack, openai_api):
    bot = await http_bot(ADMIN_USER_IDS=ADMIN)
    await stored_dataset(bot, name="mine")
    theirs = "ft:gpt-4.1-mini-2025-04-14:org::theirs"
    for sub in (f"eval {theirs} dataset=mine", f"use {theirs}"):
        [reply] = await command(bot, slack, sub, sub[:3])
        assert "isn't a model this workspace trained" in reply["text"], sub
    assert openai_api.chat_requests() == []


async def test_a_dataset_from_before_audiences_is_never_shown(http_bot, slack, openai_api):
    """Datasets saved before this fix may hold DMs: eval refuses to show them anywhere."""
    bot = await http_bot(ADMIN_USER_IDS=ADMIN)
    await stored_dataset(bot, name="legacy")
    ds, train, valid = await ft.load_dataset(bot.deps.core.store, "T1", "legacy")
    ds.audience = "?"
    await ft.save_dataset(bot.deps.core.store, "T1", ds, train, valid, replace=True)
    [reply] = await command(bot, slack, "eval gpt-4.1-mini dataset=legacy n=1 judge=off", "e")
    assert "Build it again" in reply["text"]
    assert openai_api.chat_requests() == [] and not slack.uploads


# -- 2. schemas never fetch, never crash, stay within OpenAI's limits -----------------


async def test_inline_schema_remote_ref_is_refused_and_never_fetched(
    http_bot, slack, openai_api, fetch_target
):
    """An inline schema's remote $ref is refused, naming the path, and never fetched."""
    bot = await http_bot()
    openai_api.enqueue(Reply(text='{"x": "hello"}'))
    await _ask_json(bot, slack, f"{_remote_ref_schema(fetch_target.url)} What is x?")
    assert fetch_target.hits == []
    text = await _refusal(slack)
    assert "`$.x`: only local `$ref`s like `#/$defs/name` are allowed" in text
    assert f"{fetch_target.url}/x" in text and "I never fetch schemas" in text
    assert openai_api.chat_requests() == []
    _nothing_leaked(slack)


async def test_remote_ref_is_not_fetched_on_the_json_object_fallback(
    http_bot, slack, openai_api, fetch_target
):
    """On a server without json_schema, where every answer is validated against the
    schema by the bot itself, a remote $ref still is refused and never fetched."""
    bot = await http_bot()
    openai_api.json_schema_supported = False
    openai_api.enqueue(Reply(text='{"x": "hello"}'))
    await _ask_json(bot, slack, f"{_remote_ref_schema(fetch_target.url)} What is x?")
    assert fetch_target.hits == []
    assert "only local `$ref`s" in await _refusal(slack)
    assert openai_api.chat_requests() == []
    _nothing_leaked(slack)


async def test_schema_saved_before_the_ref_check_is_refused_and_never_fetched(
    http_bot, slack, openai_api, fetch_target
):
    """A workspace schema saved with a remote $ref before the check existed is refused
    when used, and never fetched, even on the json_object fallback."""
    bot = await http_bot()
    store = bot.deps.core.store
    await store.redis.hset(
        keys.workspace(store.prefix, "T1").schemas, "legacy", _remote_ref_schema(fetch_target.url)
    )
    openai_api.json_schema_supported = False
    openai_api.enqueue(Reply(text='{"x": "hello"}'))
    await _ask_json(bot, slack, "legacy What is x?")
    assert fetch_target.hits == []
    text = await _refusal(slack)
    assert "saved schema `legacy` can't be used" in text and "only local `$ref`s" in text
    assert "/ask-json schema add legacy" in text
    _nothing_leaked(slack)


@pytest.mark.parametrize(
    "nested",
    [
        # 1,000 JSON levels: too deep for json.loads itself
        '{"properties":{"a":' * 500 + "{}" + "}}" * 500,
        # 500 levels: json.loads copes, jsonschema's checks would not
        '{"items":' * 500 + "{}" + "}" * 500,
    ],
    ids=["properties", "items"],
)
async def test_schema_nested_500_deep_gets_a_clear_error_not_silence(http_bot, slack, openai_api, nested):
    """A schema nested 500 levels deep gets a clear error instead of crashing the
    command (which left the user with no answer at all)."""
    bot = await http_bot()
    await _ask_json(bot, slack, f"{nested} What now?")
    text = await _refusal(slack)
    assert "nested more than 32 levels deep" in text and "at most 10 levels of nesting" in text
    assert openai_api.chat_requests() == []


@pytest.mark.parametrize(
    ("enum", "expected"),
    [
        (list(range(1001)), "more than 1,000 enum values in all; strict mode allows at most 1,000"),
        (
            [f"{i:03d}" + "x" * 57 for i in range(251)],  # 15,060 characters, in under 16 KB
            "251 values totalling 15,060 characters; strict mode allows at most 15,000 characters",
        ),
    ],
    ids=["enum-count", "big-enum-length"],
)
async def test_schema_over_openai_limits_gets_a_clear_error(http_bot, slack, openai_api, enum, expected):
    """A schema over OpenAI's documented strict-mode limits is refused up front, naming the
    limit and the path, instead of being sent to the model service."""
    bot = await http_bot()
    schema = {"type": "object", "properties": {"choice": {"enum": enum}}}
    await _ask_json(bot, slack, f"{json.dumps(schema, separators=(',', ':'))} Pick one")
    text = await _refusal(slack)
    assert "`$.choice`" in text and expected in text
    assert openai_api.chat_requests() == []


# -- 3. user regexes never stall the bot ---------------------------------------------


# 24 "a"s and a "!": about 2**24 backtracking steps. Python's `re` (which the bot used)
# needs seconds for that, holding the event loop the whole time, yet finishes, so the old
# code fails this test instead of hanging it; forty "a"s would take `re` days.
BACKTRACKER = "a" * 24 + "!"


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("^(a|a)+$", "the pattern `^(a|a)+$` took too long to check"),
        ("^(a+)+$", f"'{BACKTRACKER}' does not match '^(a+)+$'"),
    ],
    ids=["times-out", "checked-quickly"],
)
async def test_catastrophic_pattern_does_not_stall_the_bot(http_bot, slack, openai_api, pattern, expected):
    """A schema `pattern` that backtracks exponentially on the model's answer doesn't
    freeze every conversation: the event loop keeps running, and the user is told the
    answer failed the pattern or that the pattern couldn't be checked in time."""
    bot = await http_bot()
    # One ordinary answer first, so one-time start-up work (loading the tokenizer) isn't measured.
    openai_api.enqueue(Reply(text=json.dumps({"title": "t", "summary": "s", "key_points": []})))
    await _ask_json(bot, slack, "summary warm up", key="warm")
    answer = json.dumps({"code": BACKTRACKER})
    openai_api.enqueue(Reply(text=answer), Reply(text=answer))  # the answer, and the repair
    schema = json.dumps({"type": "object", "properties": {"code": {"type": "string", "pattern": pattern}}})
    lag = await max_loop_lag(_ask_json(bot, slack, f"{schema} Give me a code"))
    assert lag < 0.2, f"the event loop stalled for {lag:.2f}s"
    posted = slack.messages(channel="C1")[-1]
    assert "didn't produce valid JSON" in posted["text"] and "$.code" in posted["text"]
    assert expected in posted["text"].replace("&#39;", "'")


# -- 4. HTTP bodies: size and signature before anything is parsed --------------------


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


# -- 5. user text is shown as text, never as Slack markup -----------------------------


async def test_persona_domain_cant_ping_the_channel_or_break_footers(http_bot, slack):
    bot = await http_bot()
    await bot.command(
        "/persona", "expert <!channel> and <https://evil.example|docs>", response_url=slack.response_url("p")
    )
    await bot.idle()
    [note] = [m for m in slack.messages(channel="C1") if "set this channel's persona" in m["text"]]
    shown = json.dumps(note["blocks"])
    assert "<!channel>" not in shown and "<https://evil" not in shown and "&lt;!channel&gt;" in shown
    await bot.command("/persona", "expert " + "tax " * 1250, response_url=slack.response_url("long"))
    await bot.idle()
    [refused] = await slack.wait_response("long")
    assert "the limit is 80" in refused["text"]


async def test_ask_json_question_is_echoed_escaped(http_bot, slack, openai_api):
    bot = await http_bot()
    openai_api.enqueue(Reply(text=json.dumps({"title": "t", "summary": "s", "key_points": []})))
    await bot.command(
        "/ask-json",
        "summary <!here> read <https://evil.example|the docs> & <@U9>",
        response_url=slack.response_url("q"),
    )
    await bot.idle()
    [posted] = [m for m in slack.messages(channel="C1") if not m.get("thread_ts")]
    shown = json.dumps(posted["blocks"])
    assert "<!here>" not in shown and "<https://evil" not in shown and "<@U9>" not in shown
    assert "&lt;!here&gt;" in shown and "&amp;" in shown
    await bot.command("/ask-json", "summary " + "x" * 2500, response_url=slack.response_url("long"))
    await bot.idle()
    [refused] = await slack.wait_response("long")
    assert "the limit is 2,000" in refused["text"]


async def test_audit_log_and_file_names_show_user_text_literally(http_bot, slack):
    bot = await http_bot(ADMIN_USER_IDS=ADMIN, FINETUNE_SCREENING="false")
    await command(bot, slack, "<!channel> start <https://evil.example|x>", "n", user="U1")
    [shown] = await command(bot, slack, "audit", "a")
    text = json.dumps(shown["blocks"])
    assert "<!channel>" not in text and "<https://evil" not in text
    slack.add_file("<!here>.jsonl", b"not json\n", channel="C1")
    await command(bot, slack, "validate", "v")
    [report] = [m for m in slack.messages(channel="C1") if "Validation of" in m["text"]]
    assert "<!here>" not in json.dumps(report["blocks"]) + report["text"]


HOSTILE = "<!channel> <!here> <https://evil.example|docs>"
PINGS = ("<!channel>", "<!here>", "<https://evil")


def _everything_shown(slack) -> str:
    """Every message, edit, ephemeral and response_url reply the bot produced, as one text."""
    shown = [json.dumps(m, ensure_ascii=False) for m in slack.messages()]
    shown += [json.dumps(r, ensure_ascii=False) for rs in slack.responses.values() for r in rs]
    shown += [json.dumps(c.params, ensure_ascii=False) for c in slack.calls_to("chat.postEphemeral")]
    return "\n".join(shown)


async def test_no_echo_of_user_text_can_ping_the_channel_or_disguise_a_link(http_bot, slack, openai_api):
    bot = await http_bot(ADMIN_USER_IDS=ADMIN, FINETUNE_SCREENING="false")
    await stored_dataset(bot, name="support")
    commands = [
        ("/persona", HOSTILE),  # unknown persona name
        ("/persona", f"expert {HOSTILE}"),  # domain, announced in the channel
        ("/persona", f'create mine description="{HOSTILE}" You help.'),
        ("/persona", ""),  # the listing shows that description
        ("/ask-json", f"{HOSTILE} what now?"),  # unknown schema name
        ("/ask-json", '{"type": "object", "properties": {"<!here>": {"type": "string"}}} q'),
        ("/finetune", f"dataset import {HOSTILE}"),
        ("/finetune", f"dataset build since={HOSTILE}"),
        ("/finetune", f"start {HOSTILE}"),
        ("/finetune", f"use {HOSTILE}"),
        ("/finetune", f"status {HOSTILE}"),
        ("/finetune", f"validate {HOSTILE}"),
        ("/finetune", f"start support model={HOSTILE}"),
        ("/finetune", f"eval {HOSTILE} dataset=support"),
    ]
    for i, (name, text) in enumerate(commands):
        await bot.command(name, text, user=ADMIN, response_url=slack.response_url(f"k{i}"))
        await bot.idle(30)
    first = mention("hello")
    await bot.event(first)
    await bot.idle()
    for text in (f"persona {HOSTILE}", f"persona expert {HOSTILE}", f"json {HOSTILE}"):
        await bot.event(mention(text, thread_ts=first["ts"]))
        await bot.idle()
    shown = _everything_shown(slack)
    assert len(slack.responses) >= len(commands)
    assert not [p for p in PINGS if p in shown], "user text reached Slack as markup"


async def test_model_output_cant_ping_the_channel(http_bot, slack, openai_api):
    bot = await http_bot()
    # chunks "Sure<", "!chan", …, "and <", "!here": each "<" ends a delta
    openai_api.enqueue(Reply(text="Sure<!channel> and <!here>, ask <@U1>.", chunk_size=5))
    event = mention("say <!channel> for me")
    await bot.event(event)
    await bot.idle()
    [shown] = slack.messages(thread_ts=event["ts"])
    assert "<!channel>" not in json.dumps(shown) and "<!here>" not in json.dumps(shown)
    assert "<@U1>" in shown["text"] and "&lt;!channel" in shown["text"]


# -- 6. an admin's heavy work never stalls members -----------------------------------


def _varied_jsonl(n: int) -> bytes:
    """`n` distinct examples, long enough that parsing, counting and screening take a while."""
    rows = []
    for i in range(n):
        words = " ".join(f"w{(i * 7 + k) % 997}" for k in range(60))
        rows.append(
            {
                "messages": [
                    {"role": "system", "content": "You are Acme's support assistant."},
                    {"role": "user", "content": f"Question {i}: {words}?"},
                    {"role": "assistant", "content": f"Answer {i}: {words}."},
                ]
            }
        )
    return ("\n".join(json.dumps(r) for r in rows) + "\n").encode()


async def test_validating_a_big_dataset_never_stalls_the_event_loop(http_bot, slack, openai_api):
    """Parsing, token counting, the moderation screen and the near-duplicate search of a
    6,000-example dataset all run off the loop that acks everyone's events."""
    bot = await http_bot(ADMIN_USER_IDS=ADMIN)
    slack.add_file("big.jsonl", _varied_jsonl(6000), channel="C1")
    await bot.event(mention("warm up"))  # start-up work (the tokenizer) isn't measured
    await bot.idle()

    async def validate() -> None:
        await bot.command("/finetune", "validate", user=ADMIN, response_url=slack.response_url("v"))
        await bot.idle(120)

    lag = await max_loop_lag(validate())
    [report] = [m for m in slack.messages(channel="C1") if "Validation of" in m["text"]]
    assert "6,000" in json.dumps(report["blocks"])
    assert openai_api.requests and any("/embeddings" in r.path for r in openai_api.requests)
    assert lag < 0.25, f"the event loop stalled for {lag:.2f}s while an admin validated"


# -- 7. messages Slack would refuse ----------------------------------------------------


async def test_json_answer_with_a_long_question_fits_slacks_total(http_bot, slack, openai_api):
    bot = await http_bot()
    data = {"title": "t", "summary": "s" * 10_000, "key_points": ["p"]}
    openai_api.enqueue(Reply(text=json.dumps(data), chunk_size=4000))
    await bot.command("/ask-json", "summary " + "why " * 480, response_url=slack.response_url("q"))
    await bot.idle()
    [posted] = [m for m in slack.messages(channel="C1") if not m.get("thread_ts")]
    assert "Working on" not in posted["text"]
    assert_valid_blocks(posted["blocks"])
    [upload] = slack.uploads
    assert json.loads(upload.content) == data


async def test_a_long_first_answer_with_the_persona_menu_is_shown_whole(http_bot, slack, openai_api):
    bot = await http_bot(ADMIN_USER_IDS=ADMIN)
    for i in range(30):
        await bot.command(
            "/persona",
            f"create helper-{i:02d}-{'x' * 20} You help.",
            user=ADMIN,
            response_url=slack.response_url(f"c{i}"),
        )
    await bot.idle()
    answer = "\n\n".join(f"Paragraph {i}: " + "word " * 40 for i in range(53))  # ~11,300 chars
    openai_api.enqueue(Reply(text=answer, chunk_size=4000))
    event = mention("explain everything")
    await bot.event(event)
    await bot.idle()
    shown = slack.messages(thread_ts=event["ts"])
    assert not any(m["text"].endswith("…") or "Thinking" in m["text"] for m in shown)
    text = "\n".join(m["text"] for m in shown)
    at = [text.index(f"Paragraph {i}:") for i in range(53)]
    assert at == sorted(at)  # every paragraph, once, in order
    assert any(b["type"] == "actions" for m in shown for b in m["blocks"] or [])  # footer kept


async def test_an_answer_slack_refuses_is_attached_not_left_as_a_placeholder(http_bot, slack, openai_api):
    bot = await http_bot()
    openai_api.enqueue(Reply(text="A perfectly normal answer."))
    slack.fail("chat.update", error="msg_blocks_too_long", times=2)  # the first text, the end
    event = mention("hello")
    await bot.event(event)
    await bot.idle()
    [shown] = slack.messages(thread_ts=event["ts"])
    assert "Thinking" not in shown["text"] and "attached" in shown["text"]
    [upload] = slack.uploads
    assert upload.content.decode() == "A perfectly normal answer." and upload.thread_ts == event["ts"]


# -- 9. loose ends ---------------------------------------------------------------------


async def test_another_workspaces_job_is_invisible(http_bot, slack, openai_api):
    bot = await http_bot(ADMIN_USER_IDS=ADMIN)
    theirs = ft.JobRecord("ftjob-theirs", "T2", "C9", "1.0", "d", "gpt-4.1-mini-2025-04-14", "UX")
    await ft.save_job(bot.deps.core.store, theirs)
    for sub in ("status", "events", "eval"):
        [reply] = await command(bot, slack, f"{sub} ftjob-theirs", sub)
        assert "isn't a job this workspace started" in reply["text"], sub
    assert not [r for r in openai_api.requests if "ftjob-theirs" in r.path]


async def test_a_demoted_admin_loses_access_within_a_minute(http_bot, slack, monkeypatch):
    bot = await http_bot()
    slack.users["UBOSS"] = {"id": "UBOSS", "is_admin": True, "is_owner": False}
    [ok] = await command(bot, slack, "list", "a", user="UBOSS")
    assert "for admins only" not in ok["text"]
    slack.users["UBOSS"] = {"id": "UBOSS", "is_admin": False, "is_owner": False}
    start = auth._clock()
    monkeypatch.setattr(auth, "_clock", lambda: start + 61)
    [refused] = await command(bot, slack, "list", "b", user="UBOSS")
    assert "for admins only" in refused["text"]
    monkeypatch.setattr(auth, "CACHE_SIZE", 3)
    for i in range(5):
        await command(bot, slack, "list", f"u{i}", user=f"UNOBODY{i}")
    assert len(bot.deps.admin_cache) == 3  # bounded: the oldest answers make room
