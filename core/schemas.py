"""Named JSON Schemas for structured answers: built-ins, workspace ones, and strict mode.

OpenAI's strict mode accepts a subset of JSON Schema: objects must list every property
as required and set `additionalProperties: false`, and some keywords are not supported.
We normalize what can be normalized (saying so) and refuse the rest, naming the path.

Schemas come from anyone who can type a slash command, so everything here that reads one
goes through `core.schema_guard` first: it refuses remote `$ref`s, patterns that could
stall, nesting that could overflow the stack, and schemas over OpenAI's size limits.
SchemaProblem is defined there, beside the checks that raise most of them, and is
importable from here as before.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
from dataclasses import dataclass, field
from typing import Any

from core import keys
from core.schema_guard import MAX_DEPTH, SchemaProblem, check_schema, json_path, loads_schema
from core.store import Store

MAX_SCHEMA_BYTES = 16 * 1024
NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{1,63}$")
UNSUPPORTED = {
    "allOf",
    "oneOf",
    "not",
    "if",
    "then",
    "else",
    "patternProperties",
    "dependentRequired",
    "dependentSchemas",
    "unevaluatedProperties",
    "unevaluatedItems",
    "propertyNames",
    "contains",
}


@dataclass(frozen=True)
class NamedSchema:
    """A schema ready to send in strict mode, with the name users call it by."""

    name: str
    schema: dict
    description: str = ""
    builtin: bool = False
    notes: tuple[str, ...] = field(default=())  # what normalization changed


def _obj(properties: dict, description: str = "") -> dict:
    """A closed object requiring every property: the built-ins are strict as written."""
    out = {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }
    if description:
        out["description"] = description
    return out


_STR = {"type": "string"}
_NULLABLE_STR = {"type": ["string", "null"]}

BUILTINS: dict[str, NamedSchema] = {
    s.name: s
    for s in (
        NamedSchema(
            "summary",
            _obj({"title": _STR, "summary": _STR, "key_points": {"type": "array", "items": _STR}}),
            "A title, a short summary and the key points.",
            True,
        ),
        NamedSchema(
            "action_items",
            _obj(
                {
                    "items": {
                        "type": "array",
                        "items": _obj(
                            {
                                "task": _STR,
                                "owner": {
                                    **_NULLABLE_STR,
                                    "description": "A Slack mention like <@U123> or a name",
                                },
                                "due": {**_NULLABLE_STR, "description": "ISO date if stated"},
                                "priority": {"type": "string", "enum": ["low", "medium", "high"]},
                            }
                        ),
                    }
                }
            ),
            "Tasks with owner, due date and priority.",
            True,
        ),
        NamedSchema(
            "entities",
            _obj(
                {
                    "entities": {
                        "type": "array",
                        "items": _obj(
                            {
                                "name": _STR,
                                "type": {
                                    "type": "string",
                                    "enum": [
                                        "person",
                                        "organization",
                                        "location",
                                        "product",
                                        "date",
                                        "other",
                                    ],
                                },
                                "context": _STR,
                            }
                        ),
                    }
                }
            ),
            "People, organizations, places, products and dates mentioned.",
            True,
        ),
        NamedSchema(
            "sentiment",
            _obj(
                {
                    "sentiment": {"type": "string", "enum": ["positive", "neutral", "negative", "mixed"]},
                    "score": {"type": "number", "description": "-1 (negative) to 1 (positive)"},
                    "rationale": _STR,
                }
            ),
            "Overall sentiment with a score and the reason.",
            True,
        ),
        NamedSchema(
            "decision",
            _obj(
                {
                    "decision": _STR,
                    "options": {
                        "type": "array",
                        "items": _obj(
                            {
                                "option": _STR,
                                "pros": {"type": "array", "items": _STR},
                                "cons": {"type": "array", "items": _STR},
                            }
                        ),
                    },
                    "recommendation": _STR,
                    "rationale": _STR,
                }
            ),
            "The decision to make, options with pros and cons, and a recommendation.",
            True,
        ),
    )
}


# -- strict mode ------------------------------------------------------------------------


def validate_name(name: str) -> str:
    """The name normalized, if it is one users can type and Redis can key on."""
    name = name.strip().lower()
    if not NAME_RE.match(name):
        raise SchemaProblem(
            f"`{name}` is not a valid schema name: use 2-64 characters, lowercase letters, digits, `-` or `_`."
        )
    return name


def parse_inline(text: str) -> dict:
    """Parse an inline schema, saying where it fails to parse."""
    raw = text.strip()
    if len(raw.encode()) > MAX_SCHEMA_BYTES:
        raise SchemaProblem(
            f"The schema is {len(raw.encode()):,} bytes; the limit is {MAX_SCHEMA_BYTES:,} (16 KB). "
            "Trim descriptions, or ask an admin to save it as a named schema."
        )
    # Slack may turn quotes into smart quotes when users paste
    raw = raw.replace("\u201c", '"').replace("\u201d", '"').replace("\u2018", "'").replace("\u2019", "'")
    try:
        schema = loads_schema(raw)
    except json.JSONDecodeError as exc:
        snippet = raw[max(0, exc.pos - 20) : exc.pos + 20]
        raise SchemaProblem(
            f"The schema isn't valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno} (near `{snippet}`)."
        ) from exc
    if not isinstance(schema, dict):
        raise SchemaProblem('The schema must be a JSON object, like `{"type": "object", ...}`.')
    return schema


def _is_object(node: dict) -> bool:
    """Whether strict mode treats `node` as an object (and so wants it closed and all-required)."""
    types = node.get("type")
    return types == "object" or (isinstance(types, list) and "object" in types) or "properties" in node


def _make_nullable(sub: dict) -> None:
    """Let an optional property be null, so making it required keeps its meaning."""
    t = sub.get("type")
    if isinstance(t, str) and t != "null":
        sub["type"] = [t, "null"]
    elif isinstance(t, list) and "null" not in t:
        sub["type"] = [*t, "null"]
    elif t is None and "anyOf" in sub:
        sub["anyOf"] = [*sub["anyOf"], {"type": "null"}]


def _strict_object(node: dict, parts: list[str], notes: list[str]) -> None:
    """Close the object at `node` and require every property, noting each change."""
    props = node.setdefault("properties", {})
    extra = node.get("additionalProperties")
    if extra not in (None, False):
        raise SchemaProblem(
            f"`{json_path(parts)}`: `additionalProperties` must be false in strict mode "
            "(list every property instead)."
        )
    if extra is None:
        node["additionalProperties"] = False
        notes.append(f"added `additionalProperties: false` at `{json_path(parts)}`")
    required = set(node.get("required", []))
    for name, sub in props.items():
        if name not in required and isinstance(sub, dict):
            _make_nullable(sub)
            notes.append(f"made `{name}` required but nullable at `{json_path(parts)}`")
    node["required"] = list(props)


def _strict_node(node: Any, parts: list[str], depth: int, notes: list[str]) -> None:
    """Normalize `node` and its subschemas in place, refusing what strict mode can't express.

    Recursive, which is safe: check_schema has already bounded the nesting.
    """
    if not isinstance(node, dict):
        return
    if depth > MAX_DEPTH:
        raise SchemaProblem(f"`{json_path(parts)}`: nested deeper than {MAX_DEPTH} levels.")
    for word in UNSUPPORTED & node.keys():
        raise SchemaProblem(f"`{json_path(parts)}`: `{word}` isn't supported in strict mode.")
    if _is_object(node):
        _strict_object(node, parts, notes)
        for name, sub in node["properties"].items():
            _strict_node(sub, [*parts, name], depth + 1, notes)
    if "items" in node:
        _strict_node(node["items"], [*parts, "[]"], depth + 1, notes)
    for i, sub in enumerate(node.get("anyOf", [])):
        _strict_node(sub, [*parts, f"anyOf[{i}]"], depth + 1, notes)
    for word in ("$defs", "definitions"):
        for name, sub in node.get(word, {}).items():
            _strict_node(sub, [*parts, word, name], depth + 1, notes)


def _without_root_id(schema: dict, notes: list[str]) -> dict:
    """Drop a root `$id` (or draft-4 `id`), as schemas copied from docs often carry.

    Only `#…` references are allowed, and they resolve within the document whatever its
    base URI, so the id changes nothing here; deeper ids still are refused (they would).
    """
    found = [k for k in ("$id", "id") if isinstance(schema, dict) and isinstance(schema.get(k), str)]
    if not found:
        return schema
    notes.append(f"removed `{found[0]}` at `$` (references resolve within the schema)")
    return {k: v for k, v in schema.items() if k not in found}


def strictify(schema: dict) -> tuple[dict, list[str]]:
    """A strict-mode version of `schema`, with notes on what changed.

    Missing `additionalProperties: false` is added; optional properties become required
    but nullable, which keeps their meaning. Anything strict mode can't express, or that
    would be unsafe to use (see `core.schema_guard`), raises SchemaProblem naming the path.
    """
    notes: list[str] = []
    schema = _without_root_id(schema, notes)
    check_schema(schema)
    schema = copy.deepcopy(schema)
    if schema.get("type") != "object":
        raise SchemaProblem('`$`: the root must have `"type": "object"` (wrap a list in an object property).')
    _strict_node(schema, [], 0, notes)
    if "anyOf" in schema:
        raise SchemaProblem("`$`: the root can't be `anyOf` in strict mode.")
    return schema, notes


def prepare_inline(text: str) -> NamedSchema:
    """An inline schema from a command, parsed and made strict, keeping the notes to show."""
    schema, notes = strictify(parse_inline(text))
    return NamedSchema("inline", schema, schema.get("description", ""), notes=tuple(notes))


# -- workspace schemas -------------------------------------------------------------


def new_name(name: str) -> str:
    """A name a workspace schema may take: valid, and not a built-in's."""
    name = validate_name(name)
    if name in BUILTINS:
        raise SchemaProblem(f"`{name}` is a built-in schema; pick another name.")
    return name


async def save(store: Store, team: str, name: str, text: str) -> NamedSchema:
    """Store a named schema (normalized); one HSET, so never half-written."""
    name = new_name(name)
    # a large schema takes a few hundred milliseconds to check: not on the event loop
    schema, notes = await asyncio.to_thread(lambda: strictify(parse_inline(text)))
    await store.redis.hset(keys.workspace(store.prefix, team).schemas, name, json.dumps(schema))
    return NamedSchema(name, schema, schema.get("description", ""), notes=tuple(notes))


async def delete(store: Store, team: str, name: str) -> bool:
    """Remove a saved schema; False if there was none by that name."""
    return bool(await store.redis.hdel(keys.workspace(store.prefix, team).schemas, name.strip().lower()))


async def list_all(store: Store, team: str) -> list[NamedSchema]:
    """Built-ins first, then saved schemas by name, for listing (`lookup` checks one before use)."""
    return parse_saved(await store.redis.hgetall(keys.workspace(store.prefix, team).schemas))


def parse_saved(raw: dict) -> list[NamedSchema]:
    """Built-ins, then the saved schemas from their hash by name."""
    custom = [
        NamedSchema(k.decode(), json.loads(v), json.loads(v).get("description", "")) for k, v in raw.items()
    ]
    return list(BUILTINS.values()) + sorted(custom, key=lambda s: s.name)


async def lookup(store: Store, team: str, name: str) -> NamedSchema | None:
    """A built-in or saved schema by name, checked again on the way out.

    A schema saved before a check existed (a remote `$ref`, say) must not slip past it.
    """
    name = name.strip().lower()
    if name in BUILTINS:
        return BUILTINS[name]
    raw = await store.redis.hget(keys.workspace(store.prefix, team).schemas, name)
    if raw is None:
        return None
    try:
        schema, _ = await asyncio.to_thread(lambda: strictify(loads_schema(raw.decode())))
    except SchemaProblem as exc:
        raise SchemaProblem(
            f"The saved schema `{name}` can't be used: {exc} An admin can save a fixed one with "
            f"`/ask-json schema add {name} <schema>`."
        ) from exc
    return NamedSchema(name, schema, schema.get("description", ""))


def split_schema_arg(text: str) -> tuple[str, str]:
    """Split `<schema> <question>` where the schema is a name or an inline JSON object."""
    text = text.strip()
    if not text.startswith("{"):
        head, _, rest = text.partition(" ")
        return head, rest.strip()
    depth, in_str, escape = 0, False, False
    for i, ch in enumerate(text):
        if in_str:
            if escape:
                escape = False
            elif ch == "\\":
                escape = True
            elif ch in '"\u201d':
                in_str = False
        elif ch in '"\u201c':
            in_str = True
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[: i + 1], text[i + 1 :].strip()
    return text, ""  # unbalanced: let parse_inline report where
