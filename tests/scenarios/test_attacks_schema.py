"""Attacks through the JSON Schemas users give /ask-json, each driven end to end.

A schema is user input: it must not make the bot fetch URLs (SSRF through `$ref`), crash
it (nesting past the stack), exceed what the model service accepts, or stall every
conversation (a pattern that backtracks for hours on the model's answer).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from core import keys
from tests.standins.openai_api import Reply

SECRET = "INTERNAL-ONLY-DOCUMENT"


@dataclass
class FetchTarget:
    """An internal-looking HTTP server that records every request it gets."""

    url: str
    hits: list[str] = field(default_factory=list)


@pytest.fixture
def fetch_target() -> Iterator[FetchTarget]:
    """A plain HTTP server on its own thread, not on the test's event loop.

    The bot runs on the test's loop, and a vulnerable bot fetches with a blocking urlopen
    there: a server on that loop could never answer, and the test would hang instead of
    failing.
    """
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            body = json.dumps({"type": "string", "description": SECRET}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/schema+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield FetchTarget(f"http://127.0.0.1:{server.server_address[1]}", hits)
    server.shutdown()
    server.server_close()
    thread.join(5)


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
    assert SECRET not in everything


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
        keys.workspace(store.prefix, "T1")["schemas"], "legacy", _remote_ref_schema(fetch_target.url)
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


async def _max_loop_lag(work: Awaitable[None]) -> float:
    """The longest the event loop (the bot's and the test's) went unresponsive during `work`."""
    lags: list[float] = []
    done = asyncio.Event()

    async def tick() -> None:
        while not done.is_set():
            started = time.perf_counter()
            await asyncio.sleep(0.01)
            lags.append(time.perf_counter() - started - 0.01)

    ticker = asyncio.create_task(tick())
    try:
        await work
    finally:
        done.set()
        await ticker
    return max(lags)


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
    lag = await _max_loop_lag(_ask_json(bot, slack, f"{schema} Give me a code"))
    assert lag < 0.2, f"the event loop stalled for {lag:.2f}s"
    posted = slack.messages(channel="C1")[-1]
    assert "didn't produce valid JSON" in posted["text"] and "$.code" in posted["text"]
    assert expected in posted["text"].replace("&#39;", "'")
