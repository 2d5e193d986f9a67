"""Structured JSON answers: strict json_schema, validation, one repair, honest errors.

Servers without json_schema (llama.cpp, older vLLM) get `json_object` with the schema in
the prompt instead; every answer is validated with jsonschema whichever way it came.

Validating an answer runs a user's patterns against a model's text, so it is done the
way `validation_errors` describes: off the event loop, with every match timed out.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import weakref
from dataclasses import dataclass, field
from typing import Any

import openai
import referencing.exceptions
from jsonschema import ValidationError
from openai import AsyncOpenAI

from core import llm, schema_guard
from core.schemas import NamedSchema

log = logging.getLogger(__name__)

# Deeper answers are refused before validation: jsonschema compares `enum` and `const`
# values recursively, and the bot renders the answer recursively too.
MAX_ANSWER_DEPTH = 64

# Clients whose server answered "json_schema not supported": ask them for json_object
# directly. Keyed by the client (one per bot), so nothing leaks between bots or servers.
_NO_JSON_SCHEMA: weakref.WeakSet[AsyncOpenAI] = weakref.WeakSet()


@dataclass
class JsonAnswer:
    data: Any = None
    raw: str = ""
    refusal: str = ""
    error: str = ""
    mode: str = "json_schema"
    repaired: bool = False
    usage: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.data is not None and not self.error and not self.refusal


def _schema_unsupported(exc: Exception) -> bool:
    """The server can't do json_schema at all (as opposed to rejecting this schema).

    OpenAI rejects a schema it can't use in strict mode with "Invalid schema for
    response_format ..."; that is the schema's fault and must be reported, not worked
    around by switching the whole process to json_object. Local servers say "not
    supported", or (llama.cpp) fail request validation with a 500 whose message says the
    type "should be 'text' or 'json_object'".
    """
    if not isinstance(exc, openai.APIStatusError) or exc.status_code not in (400, 422, 500):
        return False
    text = str(exc).lower()
    if "invalid schema" in text:
        return False
    mentions = "json_schema" in text or "response_format" in text
    signals = ("not supported", "unsupported", "unknown", "not allowed", "should be", "must be one of")
    return mentions and any(w in text for w in signals)


def _response_format(schema: NamedSchema, mode: str) -> dict:
    if mode == "json_object":
        return {"type": "json_object"}
    name = re.sub(r"[^a-zA-Z0-9_-]", "_", schema.name)[:64] or "answer"
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema.schema, "strict": True}}


def _instructions(schema: NamedSchema, mode: str) -> str:
    text = "Answer with a single JSON object only, no prose and no code fences."
    if mode == "json_object":
        text += " It must validate against this JSON Schema:\n" + json.dumps(schema.schema)
    return text


def _error_order(error: ValidationError) -> list[tuple[int, int, str]]:
    """Sort by where in the answer, numbers before names (a path can mix both)."""
    return [(0, p, "") if isinstance(p, int) else (1, 0, str(p)) for p in error.path]


def validation_errors(data: Any, schema: dict, limit: int = 5) -> list[str]:
    """Where `data` breaks `schema`, as "$.path: problem" lines, at most `limit`.

    A schema's `pattern` can backtrack for hours (`^(a|a)+$` against forty "a"s and a
    "!"), and Python's `re` can't be stopped once started: it holds the GIL until done,
    so moving it to a thread alone would still freeze the event loop, and the thread
    could never be ended. So both: the validator (`schema_guard.validator`) matches with
    the `regex` module, which takes a timeout and releases the GIL while it matches, and
    ask_json runs this function in a worker thread (asyncio.to_thread). Each match gets
    at most `schema_guard.PATTERN_TIMEOUT` and one call `schema_guard.PATTERN_BUDGET` for
    all its matching, so the thread always finishes soon; a pattern that ran out of time
    is reported as a problem, not taken as a match. The validator never fetches a `$ref`.
    """
    with schema_guard.pattern_budget():
        try:
            errors = sorted(schema_guard.validator(schema).iter_errors(data), key=_error_order)
        except referencing.exceptions.Unresolvable as exc:
            return [
                f"$: the schema's `$ref` {exc.ref!r} can't be resolved: only local `$ref`s like "
                "`#/$defs/name` are allowed, and I never fetch schemas"
            ]
    out = []
    for e in errors[:limit]:
        where = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e.path)
        out.append(f"{where}: {e.message}")
    return out


def _parse(content: str, finish_reason: str | None) -> tuple[Any, str]:
    if finish_reason == "length":
        return None, "the answer was cut off at the length limit (truncated JSON)"
    text = content.strip()
    if text.startswith("```"):  # some local models fence their JSON anyway
        text = re.sub(r"^```[a-zA-Z]*\n?|```$", "", text).strip()
    too_deep = f"the JSON is nested more than {MAX_ANSWER_DEPTH} levels deep"
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"invalid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
    except RecursionError:
        return None, too_deep
    if schema_guard.json_too_deep(data, MAX_ANSWER_DEPTH) is not None:
        return None, too_deep
    return data, ""


@dataclass
class _Caller:
    """Sends one ask_json conversation, in json_schema mode until the server says it can't.

    The mode lives on the answer, so a fallback mid-conversation is reported with it.
    """

    client: AsyncOpenAI
    model: str
    system: str
    schema: NamedSchema
    attempts: int
    extra: dict[str, Any]
    answer: JsonAnswer

    def system_message(self) -> dict:
        """The system prompt with instructions for the current mode."""
        return {
            "role": "system",
            "content": f"{self.system}\n\n{_instructions(self.schema, self.answer.mode)}",
        }

    async def _complete(self, msgs: list[dict]) -> Any:
        """One completion in the current mode (llm.complete does the retrying)."""
        return await llm.complete(
            self.client,
            model=self.model,
            messages=msgs,
            attempts=self.attempts,
            response_format=_response_format(self.schema, self.answer.mode),
            **self.extra,
        )

    async def __call__(self, convo: list[dict]) -> Any:
        """A completion for `convo`; on "json_schema not supported", switch this client to
        json_object for good, rewrite the system prompt in `convo` to match, and retry."""
        try:
            return await self._complete(convo)
        except openai.APIStatusError as exc:
            if self.answer.mode != "json_schema" or not _schema_unsupported(exc):
                raise
            log.info("Server rejected json_schema; falling back to json_object")
            _NO_JSON_SCHEMA.add(self.client)
            self.answer.mode = "json_object"
            msgs = [self.system_message(), *convo[1:]]
            convo[0] = msgs[0]
            return await self._complete(msgs)


def _add_usage(answer: JsonAnswer, response: Any) -> None:
    """Add a response's token counts to the answer's, so a repair is counted too."""
    if response.usage:
        for k, v in llm.usage_of(response.usage).items():
            answer.usage[k] = answer.usage.get(k, 0) + v


def _repair_request(convo: list[dict], raw: str, problem: str) -> list[dict]:
    """`convo` with the unusable answer and a request to fix it, naming what was wrong."""
    return [
        *convo,
        {"role": "assistant", "content": raw[:8000]},
        {
            "role": "user",
            "content": f"That answer is not usable: {problem}. Reply with the corrected JSON object only.",
        },
    ]


async def ask_json(
    client: AsyncOpenAI,
    *,
    model: str,
    system: str,
    messages: list[dict],
    schema: NamedSchema,
    attempts: int = 4,
    max_tokens: int = 4096,
    temperature: float | None = None,
    reasoning_effort: str | None = None,
) -> JsonAnswer:
    """Ask for JSON matching `schema`; repair once if it's broken, then say what's wrong."""
    answer = JsonAnswer(mode="json_object" if client in _NO_JSON_SCHEMA else "json_schema")
    extra: dict[str, Any] = {"max_completion_tokens": max_tokens}
    extra.update(llm.steering_args(model, temperature=temperature, reasoning_effort=reasoning_effort))
    call = _Caller(client, model, system, schema, attempts, extra, answer)
    convo = [call.system_message(), *messages]
    for round_ in (1, 2):
        response = await call(convo)
        _add_usage(answer, response)
        choice = response.choices[0]
        message = choice.message
        if getattr(message, "refusal", None):
            answer.refusal = message.refusal
            return answer
        answer.raw = message.content or ""
        data, problem = _parse(answer.raw, choice.finish_reason)
        if not problem:
            errors = await asyncio.to_thread(validation_errors, data, schema.schema)
            if not errors:
                answer.data, answer.error, answer.repaired = data, "", round_ == 2
                return answer
            problem = "it does not match the schema: " + "; ".join(errors)
        answer.error = problem
        if round_ == 1:
            convo = _repair_request(convo, answer.raw, problem)
    return answer
