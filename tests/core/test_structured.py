"""Validating model answers: never fetching, never stalling, never crashing on depth."""

from __future__ import annotations

import json
import time

from core import schema_guard, schemas, structured
from core.schemas import NamedSchema
from tests.conftest import max_loop_lag
from tests.standins.openai_api import Reply

# 22 "a"s and a "!": the `regex` module needs seconds to fail `^(a|a)+$` on it (Python's
# `re`, which the bot used, about half a second, holding the GIL throughout).
BACKTRACKER = "a" * 22 + "!"
SLOW = {"type": "string", "pattern": "^(a|a)+$"}


def _object(properties: dict, **extra) -> dict:
    return {"type": "object", "properties": properties, "required": list(properties), **extra}


def test_answer_validation_never_fetches_a_remote_ref(fetch_target):
    """A schema that skipped the checks (saved before they existed, say) still can't make
    answer validation fetch its remote `$ref`; the problem is reported instead."""
    url, hits = fetch_target.url, fetch_target.hits
    errors = structured.validation_errors({"x": "hi"}, _object({"x": {"$ref": f"{url}/x"}}))
    assert hits == []
    assert errors == [
        f"$: the schema's `$ref` '{url}/x' can't be resolved: only local `$ref`s like "
        "`#/$defs/name` are allowed, and I never fetch schemas"
    ]


def test_catastrophic_pattern_is_reported_as_unchecked():
    """A value the pattern would take seconds to reject is reported as not checkable in
    time, within the per-match timeout, rather than blocking or being waved through."""
    started = time.perf_counter()
    errors = structured.validation_errors({"code": BACKTRACKER}, _object({"code": SLOW}))
    assert time.perf_counter() - started < schema_guard.PATTERN_TIMEOUT + 0.3
    assert errors == [
        "$.code: the pattern `^(a|a)+$` took too long to check, so I couldn't confirm this value matches it"
    ]


def test_many_catastrophic_values_share_one_time_budget():
    """Forty such values cost one budget in all, not forty timeouts (or forty backtracks)."""
    started = time.perf_counter()
    errors = structured.validation_errors(
        {"codes": [BACKTRACKER] * 40}, _object({"codes": {"type": "array", "items": SLOW}})
    )
    assert time.perf_counter() - started < schema_guard.PATTERN_BUDGET + 0.5
    assert len(errors) == 5 and all("took too long to check" in e for e in errors)


def test_pattern_properties_are_matched_safely_too():
    """`patternProperties` (and `additionalProperties`, which applies it) match property
    names with the same timeout, and report the name once."""
    schema = {
        "type": "object",
        "patternProperties": {"^(a|a)+$": {"type": "integer"}},
        "additionalProperties": False,
    }
    errors = structured.validation_errors({BACKTRACKER: 1}, schema)
    assert errors == [
        f"$.{BACKTRACKER}: the pattern `^(a|a)+$` took too long to check, so I couldn't confirm this value matches it"
    ]


def test_root_dialect_and_recursion_cannot_switch_back_to_re():
    """A `$schema` at the root, reached again through `$ref: "#"`, would make jsonschema
    re-pick its stock validator (which matches with `re`); the nested value is still
    matched with the timeout."""
    schema = _object(
        {"code": SLOW, "child": {"anyOf": [{"$ref": "#"}, {"type": "null"}]}},
        **{"$schema": "https://json-schema.org/draft/2020-12/schema"},
    )
    started = time.perf_counter()
    errors = structured.validation_errors(
        {"code": "a", "child": {"code": BACKTRACKER, "child": None}}, schema
    )
    assert time.perf_counter() - started < 2 * schema_guard.PATTERN_TIMEOUT + 0.3
    assert errors == [
        "$.child: {'code': '" + BACKTRACKER + "', 'child': None} is not valid under any of the given schemas"
    ]


def _named(schema: dict) -> NamedSchema:
    return NamedSchema("test", schemas.strictify(schema)[0])


async def test_answer_validation_keeps_the_event_loop_running(openai_client, openai_api):
    """While a model's answer is checked against a backtracking pattern, other
    conversations (everything on the event loop) keep going."""
    answer = json.dumps({"code": BACKTRACKER})
    openai_api.enqueue(Reply(text=answer), Reply(text=answer), Reply(text=answer))
    await structured.ask_json(  # warm up: the first call loads the SDK's lazy parts
        openai_client,
        model="m",
        system="s",
        messages=[],
        schema=_named(_object({"code": {"type": "string"}})),
    )
    result = None

    async def validate() -> None:
        nonlocal result
        result = await structured.ask_json(
            openai_client, model="m", system="s", messages=[], schema=_named(_object({"code": SLOW}))
        )

    assert await max_loop_lag(validate()) < 0.2
    assert not result.ok and "took too long to check" in result.error


async def test_deeply_nested_answer_is_refused_not_crashing(openai_client, openai_api):
    """An answer nested thousands of levels deep (json_object mode, a local model) is
    reported as unusable instead of raising RecursionError out of ask_json."""
    deep = "[" * 5000 + "]" * 5000
    medium = json.dumps({"code": json.loads("[" * 100 + "]" * 100)})
    openai_api.enqueue(Reply(text=deep), Reply(text=medium))
    result = await structured.ask_json(
        openai_client, model="m", system="s", messages=[], schema=_named(_object({"code": {"type": "array"}}))
    )
    assert not result.ok and result.error == "the JSON is nested more than 64 levels deep"
    assert "nested more than 64 levels deep" in openai_api.chat_requests()[-1]["messages"][-1]["content"]
