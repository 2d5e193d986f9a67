"""Reading and using a user's JSON Schema safely: the only place a jsonschema validator is built.

Schemas come from anyone who can type a slash command, and a schema is more than data:
jsonschema acts on it. Left alone, that would let a schema

- make the bot fetch URLs (SSRF): jsonschema retrieves any remote `$ref` with urlopen,
  with no timeout, on the event loop. Only local `$ref`s pass `check_schema`, and every
  validator is built by `validator()`, whose registry refuses to retrieve anything;
- stall every conversation: Python's `re` can backtrack for hours on a user's pattern
  (`^(a|a)+$`) while holding the GIL. Patterns are compiled and matched by the `regex`
  module instead, with their size bounded before compiling and a timeout on every match;
- crash the bot with RecursionError: json.loads, copy.deepcopy, jsonschema and our own
  walkers all recurse. Nesting is measured without recursion before any of them reads
  the schema (or a model's answer);
- be refused by the model service: OpenAI's size limits for strict schemas are checked
  here, naming the path, instead of surfacing as an API error.

`core.schemas` (named schemas, strict-mode normalization) calls `check_schema` before it
reads a schema; `core.structured` validates answers with `validator` inside `pattern_budget`.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import re
import time
import urllib.parse
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import referencing
import referencing.exceptions
import regex
from jsonschema import Draft202012Validator, FormatChecker, ValidationError
from jsonschema.protocols import Validator
from jsonschema.validators import Draft3Validator, Draft4Validator, extend, validator_for

# OpenAI's documented limits for strict structured-output schemas, from "Supported schemas"
# in the Structured Outputs guide (https://developers.openai.com/api/docs/guides/structured-outputs
# #supported-schemas, formerly platform.openai.com/docs/guides/structured-outputs):
#   "A schema may have up to 5000 object properties total, with up to 10 levels of nesting."
#   "In a schema, total string length of all property names, definition names, enum values,
#    and const values cannot exceed 120,000 characters."
#   "A schema may have up to 1000 enum values across all enum properties."
#   "For a single enum property with string values, the total string length of all enum
#    values cannot exceed 15,000 characters when there are more than 250 enum values."
# (Older versions of the page said 100 properties and 5 levels.) The page doesn't say how
# levels are counted; we count every step into a subschema, which errs on refusing.
MAX_DEPTH = 10
MAX_PROPERTIES = 5_000
MAX_NAME_CHARS = 120_000
MAX_ENUM_VALUES = 1_000
BIG_ENUM = 250
MAX_BIG_ENUM_CHARS = 15_000

# Ours, not OpenAI's. A schema level is one or two JSON levels (`properties`, then the
# property), so 32 leaves room for 10 levels and their enums; past it the schema is refused
# before jsonschema's check, which takes about ten Python frames per schema level, could
# run out of stack (a 500-level schema raised RecursionError).
MAX_JSON_DEPTH = 32
# A pattern is compiled by `regex`, which spells counted repeats out (`(a{1000}){1000}` is a
# million-character program, and three levels of that exhausts memory): bound its length,
# group nesting (the parser recurses), each count, and the spelled-out size, per pattern and
# per schema, before compiling. Matching is bounded by time: PATTERN_TIMEOUT per match, and
# PATTERN_BUDGET for all the matching in one validation. A spelled-out size of 20,000
# compiles in about 10 ms here, so `^[a-z0-9]{1,2000}$` and its like are fine.
MAX_PATTERN_CHARS = 1_000
MAX_PATTERN_NESTING = 20
MAX_PATTERN_REPEAT = 10_000
MAX_PATTERN_SIZE = 20_000
MAX_SCHEMA_PATTERN_SIZE = 50_000
PATTERN_TIMEOUT = 0.1
PATTERN_BUDGET = 1.0

# Keywords that give a schema its own base URI or anchor, or resolve dynamically: with them
# a `#/...` could mean something else to jsonschema than to OpenAI, so they are refused.
RESOLUTION_WORDS = ("$id", "$anchor", "$dynamicAnchor", "$dynamicRef", "$recursiveAnchor", "$recursiveRef")
_LOCAL_REF = re.compile(r"#(?:/.*)?", re.DOTALL)
# Inline flags for verbose mode (`x`: whitespace and `#` comments) or version-1 syntax
# (nested sets) change how a pattern reads, which `pattern_size` can't follow.
_SYNTAX_FLAGS = re.compile(r"\(\?[a-zA-Z0-9^-]*[xV]")
_REPEAT = re.compile(r"\{(\d*)(,?)(\d*)\}")


class SchemaProblem(ValueError):
    """A schema can't be used; the message says where and why."""


class PatternProblem(ValueError):
    """A pattern can't be compiled safely; the message finishes "the pattern `p` ..."."""


# -- naming places in a schema ---------------------------------------------------------


def json_path(parts: list[str]) -> str:
    """`$.a.b[0]`: how every message points into a schema, so users can find the spot."""
    return "$" + "".join(f".{p}" if not p.startswith("[") else p for p in parts)


def _short_path(parts: list[str], keep: int = 12) -> str:
    """A path that stays readable when it is hundreds of levels long."""
    return json_path(parts[:keep]) + ("…" if len(parts) > keep else "")


def _quote(value: Any, limit: int = 100) -> str:
    """A user's value in backticks, cut short, so it can't break or flood the message."""
    text = value if isinstance(value, str) else json.dumps(value)
    text = text.replace("`", "'")
    return f"`{text[:limit]}…`" if len(text) > limit else f"`{text}`"


# -- depth, measured without recursion -------------------------------------------------


def json_too_deep(value: Any, limit: int) -> list[str] | None:
    """The path to the first container nested deeper than `limit`, or None.

    Iterative, so it is safe on input that would make anything recursive (json.dumps,
    copy.deepcopy, jsonschema) raise RecursionError.
    """
    stack: list[tuple[Any, int, tuple[str, ...]]] = [(value, 1, ())]
    while stack:
        node, depth, parts = stack.pop()
        if isinstance(node, dict):
            children = [(str(k), v) for k, v in node.items()]
        elif isinstance(node, list):
            children = [(f"[{i}]", v) for i, v in enumerate(node)]
        else:
            continue
        if depth > limit:
            return list(parts)
        stack.extend((child, depth + 1, (*parts, key)) for key, child in children)
    return None


def _text_too_deep(raw: str, limit: int) -> tuple[int, int] | None:
    """(line, column) where JSON text opens more than `limit` levels, before json.loads recurses."""
    depth, in_string, escaped, line, column = 0, False, False, 1, 0
    for ch in raw:
        column += 1
        if ch == "\n":
            line, column = line + 1, 0
        elif in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return line, column
        elif ch in "]}":
            depth -= 1
    return None


def _deep_problem(where: str) -> SchemaProblem:
    """The one message for a schema too deep to read, wherever it was noticed."""
    return SchemaProblem(
        f"{where}: the schema is nested more than {MAX_JSON_DEPTH} levels deep; "
        f"strict mode allows at most {MAX_DEPTH} levels of nesting."
    )


def loads_schema(raw: str) -> Any:
    """json.loads, refusing text nested too deeply before the parser recurses into it."""
    if (deep := _text_too_deep(raw, MAX_JSON_DEPTH)) is not None:
        raise _deep_problem(f"At line {deep[0]}, column {deep[1]}")
    try:
        return json.loads(raw)
    except RecursionError as exc:  # _text_too_deep should have caught it first
        raise _deep_problem("The schema") from exc


# -- walking every subschema -----------------------------------------------------------

# Keywords whose value is one subschema or a list of them, and those mapping names to
# subschemas, across drafts 3 to 2020-12 (a superset, so nothing jsonschema evaluates is missed).
_SUBSCHEMA_WORDS = (
    "anyOf",
    "allOf",
    "oneOf",
    "prefixItems",
    "additionalItems",
    "additionalProperties",
    "unevaluatedItems",
    "unevaluatedProperties",
    "contains",
    "propertyNames",
    "not",
    "if",
    "then",
    "else",
    "contentSchema",
    "extends",
    "type",  # draft 3: a list of type names and schemas
    "disallow",
)
_SUBSCHEMA_MAPS = ("patternProperties", "$defs", "definitions", "dependentSchemas", "dependencies")
_MISSING = object()


def _children(node: dict) -> Iterator[tuple[list[str], dict]]:
    """The subschemas directly under `node`, each with the path parts that lead to it."""
    props = node.get("properties")
    if isinstance(props, dict):
        yield from (([str(name)], sub) for name, sub in props.items() if isinstance(sub, dict))
    items = node.get("items")
    if isinstance(items, dict):
        yield ["[]"], items
    elif isinstance(items, list):
        yield from (([f"items[{i}]"], sub) for i, sub in enumerate(items) if isinstance(sub, dict))
    for word in _SUBSCHEMA_WORDS:
        value = node.get(word)
        if isinstance(value, dict):
            yield [word], value
        elif isinstance(value, list):
            yield from (([f"{word}[{i}]"], sub) for i, sub in enumerate(value) if isinstance(sub, dict))
    for word in _SUBSCHEMA_MAPS:
        value = node.get(word)
        if isinstance(value, dict):
            yield from (([word, str(name)], sub) for name, sub in value.items() if isinstance(sub, dict))


def _pointer_parts(ref: str) -> list[str]:
    """The keys of a local `$ref` (`#/$defs/a~1b` -> ["$defs", "a/b"]), decoded as referencing does."""
    if ref == "#":
        return []
    return [p.replace("~1", "/").replace("~0", "~") for p in urllib.parse.unquote(ref[1:]).split("/")[1:]]


def _resolve_local(root: Any, ref: str) -> Any:
    """What a local `$ref` points at in `root`, or _MISSING: never anything outside it."""
    node = root
    for part in _pointer_parts(ref):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return _MISSING
    return node


def _schema_nodes(root: dict) -> Iterator[tuple[dict, list[str]]]:
    """Every subschema jsonschema could evaluate, once each, with its path, without recursion.

    Besides the keywords' subschemas this follows local `$ref`s, which can point anywhere in
    the document (`#/x` where `x` is no keyword at all).
    """
    seen: set[int] = set()
    stack: list[tuple[Any, list[str]]] = [(root, [])]
    while stack:
        node, parts = stack.pop()
        if not isinstance(node, dict) or id(node) in seen:
            continue
        seen.add(id(node))
        yield node, parts
        ref = node.get("$ref")
        if isinstance(ref, str) and _LOCAL_REF.fullmatch(ref):
            stack.append((_resolve_local(root, ref), _pointer_parts(ref)))
        stack.extend((sub, [*parts, *more]) for more, sub in reversed(list(_children(node))))


# -- patterns: bounded before compiling ------------------------------------------------


def _refuse_unreadable_pattern(pattern: str) -> None:
    """Refuse a pattern too long to scan, or whose flags change syntax the scan can't follow."""
    if len(pattern) > MAX_PATTERN_CHARS:
        raise PatternProblem(f"is {len(pattern):,} characters long; the limit is {MAX_PATTERN_CHARS:,}")
    if _SYNTAX_FLAGS.search(pattern):
        raise PatternProblem("turns on verbose (`x`) or version (`V0`/`V1`) syntax, which I don't support")


def _skip_escape(pattern: str, i: int) -> int:
    """The index past the escape at `i`, with its `{...}`/`<...>` argument if any (one atom)."""
    escaped = pattern[i + 1 : i + 2]
    i += 2
    if escaped in ("p", "P", "N", "x", "g") and pattern[i : i + 1] in ("{", "<"):
        close = pattern.find("}" if pattern[i] == "{" else ">", i)
        i = len(pattern) if close < 0 else close + 1
    return i


def _skip_set(pattern: str, i: int) -> int:
    """The index past the character set opening at `i` (one atom, whatever it holds)."""
    n = len(pattern)
    i += 1
    if pattern[i : i + 1] == "^":
        i += 1
    if pattern[i : i + 1] == "]":
        i += 1
    while i < n and pattern[i] != "]":
        i += 2 if pattern[i] == "\\" else 1
    return i + 1


def _skip_comment(pattern: str, i: int) -> int:
    """The index past the `(?#...)` comment opening at `i` (no atom at all)."""
    close = pattern.find(")", i)
    return len(pattern) if close < 0 else close + 1


def _repeat_count(repeat: re.Match[str]) -> int:
    """The most times a `{m}`, `{m,}`, `{,n}` or `{m,n}` repeats, refusing one over the limit."""
    low = int(repeat.group(1) or 0)
    count = max(low, int(repeat.group(3) or 0)) if repeat.group(2) else low
    if count > MAX_PATTERN_REPEAT:
        raise PatternProblem(f"repeats something {count:,} times; the limit is {MAX_PATTERN_REPEAT:,}")
    return count


def pattern_size(pattern: str) -> int:
    """About how large `regex` makes `pattern` once its counted repeats are spelled out.

    Raises PatternProblem when it is too big to compile safely. A conservative scan (no
    recursion, linear in the pattern): it may overestimate, never wave a bomb through.
    """
    _refuse_unreadable_pattern(pattern)
    sizes = [0]  # spelled-out size of each open group, outermost first
    last = 0  # size of the previous atom: what a `{m,n}` after it repeats
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        atom = 1
        if ch == "\\":
            i = _skip_escape(pattern, i)
        elif ch == "[":
            i = _skip_set(pattern, i)
        elif ch == "(" and pattern.startswith("(?#", i):
            i, atom = _skip_comment(pattern, i), 0
        elif ch == "(":
            if len(sizes) > MAX_PATTERN_NESTING:
                raise PatternProblem(f"nests groups more than {MAX_PATTERN_NESTING} deep")
            sizes.append(0)
            i, last = i + 1, 0
            continue
        elif ch == ")":
            i += 1
            atom = max(1, sizes.pop()) if len(sizes) > 1 else 1
        elif ch == "{" and (m := _REPEAT.match(pattern, i)) and (m.group(1) or m.group(3)):
            i = m.end()
            count = _repeat_count(m)
            sizes[-1] += last * max(count - 1, 0)
            atom, last = 0, last * count
        else:
            i += 1
            if ch in "*+?|^$":
                atom = 0
        sizes[-1] += atom
        if ch != "{":
            last = atom
        if sum(sizes) > MAX_PATTERN_SIZE:
            raise PatternProblem(
                f"is too large once its repeats are spelled out (over {MAX_PATTERN_SIZE:,} characters)"
            )
    return max(1, sum(sizes))


@functools.lru_cache(maxsize=512)
def compiled_pattern(pattern: str) -> regex.Pattern:
    """`pattern` compiled by `regex` (which takes a match timeout), if it is safe to compile."""
    pattern_size(pattern)
    try:
        return regex.compile(pattern)
    except (regex.error, OverflowError, RecursionError, ValueError) as exc:
        raise PatternProblem(f"isn't a valid regular expression ({exc})") from exc


# -- patterns: matched with a timeout --------------------------------------------------

_pattern_deadline: ContextVar[float | None] = ContextVar("pattern_deadline", default=None)


@contextlib.contextmanager
def pattern_budget(seconds: float = PATTERN_BUDGET) -> Iterator[None]:
    """Bound all pattern matching inside the block (one answer's validation) to `seconds`."""
    token = _pattern_deadline.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _pattern_deadline.reset(token)


def _search(pattern: str, text: str) -> bool:
    """Whether `pattern` matches somewhere in `text`; TimeoutError when time ran out."""
    compiled = compiled_pattern(pattern)
    timeout = PATTERN_TIMEOUT
    deadline = _pattern_deadline.get()
    if deadline is not None:
        timeout = min(timeout, deadline - time.monotonic())
        if timeout <= 0:
            raise TimeoutError("no time left for patterns")
    return compiled.search(text, timeout=timeout) is not None


def _pattern_failure(pattern: str, exc: Exception) -> ValidationError:
    """A pattern that couldn't be checked is a problem to report, never a match."""
    if isinstance(exc, TimeoutError):
        return ValidationError(
            f"the pattern {_quote(pattern)} took too long to check, so I couldn't confirm this value matches it"
        )
    return ValidationError(f"the pattern {_quote(pattern)} can't be used: it {exc}")


def _pattern_keyword(v: Validator, pattern: str, instance: Any, schema: dict) -> Iterator[ValidationError]:
    """jsonschema's `pattern`, matching with `regex` and a timeout instead of `re`."""
    if not v.is_type(instance, "string"):
        return
    try:
        matched = _search(pattern, instance)
    except (TimeoutError, PatternProblem) as exc:
        yield _pattern_failure(pattern, exc)
        return
    if not matched:
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _matching(patterns: list[str], key: str) -> tuple[list[str], list[ValidationError]]:
    """The patterns matching property name `key`, and a problem for each that couldn't be checked."""
    hits, problems = [], []
    for pattern in patterns:
        try:
            if _search(pattern, key):
                hits.append(pattern)
        except (TimeoutError, PatternProblem) as exc:
            problem = _pattern_failure(pattern, exc)
            problem.path.appendleft(key)
            problems.append(problem)
    return hits, problems


def _pattern_properties_keyword(
    v: Validator, pattern_properties: dict, instance: Any, schema: dict
) -> Iterator[ValidationError]:
    """jsonschema's `patternProperties`, matching property names safely."""
    if not v.is_type(instance, "object"):
        return
    for key, value in instance.items():
        hits, problems = _matching(list(pattern_properties), key)
        yield from problems
        for pattern in hits:
            yield from v.descend(value, pattern_properties[pattern], path=key, schema_path=pattern)


def _additional_properties_keyword(
    v: Validator, additional: Any, instance: Any, schema: dict
) -> Iterator[ValidationError]:
    """jsonschema's, matching patternProperties safely; a name whose patterns couldn't be
    checked isn't called additional (patternProperties already reported it)."""
    if not v.is_type(instance, "object"):
        return
    properties = schema.get("properties", {})
    patterns = list(schema.get("patternProperties", {}))
    extras = [k for k in instance if k not in properties and not any(_matching(patterns, k))]
    if v.is_type(additional, "object"):
        for extra in extras:
            yield from v.descend(instance[extra], additional, path=extra)
    elif not additional and extras:
        names = ", ".join(repr(k) for k in sorted(extras))
        yield ValidationError(f"Additional properties are not allowed ({names} unexpected)")


# -- the validator ---------------------------------------------------------------------


@functools.cache
def _safe_class(base: type[Validator]) -> type[Validator]:
    """`base` with every keyword that matches a pattern replaced by one that does it safely."""
    return extend(
        base,
        {
            "pattern": _pattern_keyword,
            "patternProperties": _pattern_properties_keyword,
            "additionalProperties": _additional_properties_keyword,
        },
    )


def _refuse_retrieval(uri: str) -> referencing.Resource:
    """Every `$ref` that leaves the schema ends here: nothing is ever fetched."""
    raise referencing.exceptions.NoSuchResource(ref=uri)


# jsonschema adds the known meta-schemas to it, so `$schema` and meta-schema checks still work.
_NO_FETCH: referencing.Registry = referencing.Registry(retrieve=_refuse_retrieval)


def _without_dialects(schema: dict) -> dict:
    """A copy without `$schema` anywhere.

    The class was already picked from it, and jsonschema re-picks the stock class (whose
    `pattern` uses `re`) for any subschema that names one, including the root reached by
    `$ref: "#"`.
    """
    out = copy.deepcopy(schema)
    for node, _ in _schema_nodes(out):
        node.pop("$schema", None)
    return out


def validator(schema: dict, *, format_checker: FormatChecker | None = None) -> Validator:
    """The one way this project builds a jsonschema validator (answers, and schema checks).

    - Its registry refuses every retrieval: jsonschema would otherwise fetch any remote
      `$ref` with urlopen, with no timeout, on the event loop (SSRF). strictify already
      refuses non-local refs; this holds even for a schema that skipped it.
    - `pattern`, `patternProperties` and `additionalProperties` (which applies
      patternProperties) match with the `regex` module instead of `re`: `re` can't be
      interrupted and holds the GIL for the whole match, so `^(a|a)+$` would stall every
      conversation even from a worker thread. `regex` takes a timeout and releases the
      GIL while matching a str. A pattern that runs out of time is reported as a problem
      ("took too long to check"), never as a match. `format` isn't asserted on answers,
      so `format: regex` compiles nothing; `unevaluatedProperties` (which would still read
      patternProperties with `re`) is refused by strictify.
    Validation is still blocking work: run it off the event loop, inside `pattern_budget()`.
    """
    cls = _safe_class(validator_for(schema, default=Draft202012Validator))
    return cls(_without_dialects(schema), registry=_NO_FETCH, format_checker=format_checker)


# -- checking a schema before it is used -----------------------------------------------

# check_schema asserts `format: regex` on every `pattern`, compiling it with `re`; this
# checker (and nothing else: no other format matters there) compiles it safely instead.
_SCHEMA_FORMATS = FormatChecker(formats=())


@_SCHEMA_FORMATS.checks("regex", raises=PatternProblem)
def _is_safe_regex(instance: object) -> bool:
    """`format: regex` in a meta-schema, compiled by `regex` within the size bounds."""
    if isinstance(instance, str):
        compiled_pattern(instance)
    return True


@functools.cache
def _meta_validator(dialect: type[Validator]) -> Validator:
    """A safe validator for `dialect`'s meta-schema, built once per draft."""
    return validator(dialect.META_SCHEMA, format_checker=_SCHEMA_FORMATS)


@dataclass
class _Totals:
    """What OpenAI limits across the whole schema, counted as the nodes are visited."""

    properties: int = 0
    enums: int = 0
    names: int = 0  # characters of property names, definition names, enum and const values
    pattern_size: int = 0


def _refuse_unknown_dialect(schema: dict) -> None:
    """Refuse a `$schema` jsonschema doesn't know: it would otherwise try to fetch it."""
    dialect = schema.get("$schema")
    if dialect is not None and (not isinstance(dialect, str) or validator_for(schema, default=None) is None):
        raise SchemaProblem(
            f"`$`: `$schema` {_quote(dialect)} isn't a JSON Schema version I know (I never fetch "
            "meta-schemas); use `https://json-schema.org/draft/2020-12/schema`, or leave it out."
        )


def _resolution_words(schema: dict) -> tuple[str, ...]:
    """The keywords that would change what a `$ref` means, in this schema's draft."""
    words = RESOLUTION_WORDS
    if validator_for(schema, default=Draft202012Validator) in (Draft3Validator, Draft4Validator):
        words = (*words, "id")  # these drafts spell `$id` as `id`
    return words


def _refuse_resolution(root: dict, node: dict, here: str, words: tuple[str, ...], *, at_root: bool) -> None:
    """Refuse anything in `node` that could make a reference leave the schema or change meaning."""
    if not at_root and "$schema" in node:
        raise SchemaProblem(f"`{here}`: `$schema` is only allowed at the root.")
    for word in words:
        if word in node:
            raise SchemaProblem(
                f"`{here}`: `{word}` isn't supported: it changes what references point at "
                "(only local `$ref`s like `#/$defs/name` are allowed)."
            )
    if "$ref" in node:
        ref = node["$ref"]
        if not isinstance(ref, str) or not _LOCAL_REF.fullmatch(ref):
            raise SchemaProblem(
                f"`{here}`: only local `$ref`s like `#/$defs/name` are allowed; "
                f"{_quote(ref)} was refused (I never fetch schemas)."
            )
        if not isinstance(_resolve_local(root, ref), dict | bool):
            raise SchemaProblem(f"`{here}`: `$ref` {_quote(ref)} doesn't point at a schema in this one.")


def _refuse_unsafe_patterns(node: dict, here: str, totals: _Totals) -> None:
    """Compile `node`'s patterns now, within the bounds, so a bad one is named at its path."""
    patterns = [node["pattern"]] if isinstance(node.get("pattern"), str) else []
    if isinstance(node.get("patternProperties"), dict):
        patterns += list(node["patternProperties"])
    for pattern in patterns:
        try:
            totals.pattern_size += pattern_size(pattern)
            if totals.pattern_size > MAX_SCHEMA_PATTERN_SIZE:
                raise PatternProblem(
                    f"takes the schema's patterns over {MAX_SCHEMA_PATTERN_SIZE:,} characters "
                    "once their repeats are spelled out"
                )
            compiled_pattern(pattern)
        except PatternProblem as exc:
            raise SchemaProblem(f"`{here}`: the pattern {_quote(pattern)} {exc}.") from exc


def _count_enum(enum: list, here: str, totals: _Totals) -> None:
    """Count an enum toward OpenAI's limits, refusing one past them."""
    totals.enums += len(enum)
    if totals.enums > MAX_ENUM_VALUES:
        raise SchemaProblem(
            f"`{here}`: the schema has more than {MAX_ENUM_VALUES:,} enum values in all; "
            f"strict mode allows at most {MAX_ENUM_VALUES:,}."
        )
    chars = sum(len(x) for x in enum if isinstance(x, str))
    if len(enum) > BIG_ENUM and chars > MAX_BIG_ENUM_CHARS:
        raise SchemaProblem(
            f"`{here}`: this enum has {len(enum):,} values totalling {chars:,} characters; strict "
            f"mode allows at most {MAX_BIG_ENUM_CHARS:,} characters in an enum of over {BIG_ENUM} values."
        )
    totals.names += sum(len(x) if isinstance(x, str) else len(json.dumps(x)) for x in enum)


def _count_sizes(node: dict, here: str, totals: _Totals) -> None:
    """Count `node` toward OpenAI's schema-wide limits, refusing the schema once past one."""
    if isinstance(node.get("properties"), dict):
        totals.properties += len(node["properties"])
        totals.names += sum(len(str(k)) for k in node["properties"])
        if totals.properties > MAX_PROPERTIES:
            raise SchemaProblem(
                f"`{here}`: the schema has more than {MAX_PROPERTIES:,} properties in all; "
                f"strict mode allows at most {MAX_PROPERTIES:,}."
            )
    for word in ("$defs", "definitions"):
        if isinstance(node.get(word), dict):
            totals.names += sum(len(str(k)) for k in node[word])
    if isinstance(node.get("enum"), list):
        _count_enum(node["enum"], here, totals)
    if "const" in node:
        const = node["const"]
        totals.names += len(const) if isinstance(const, str) else len(json.dumps(const))
    if totals.names > MAX_NAME_CHARS:
        raise SchemaProblem(
            f"`{here}`: property names, definition names, enum values and const values add up "
            f"to more than {MAX_NAME_CHARS:,} characters; strict mode allows at most {MAX_NAME_CHARS:,}."
        )


def _refuse_unsafe(schema: dict) -> None:
    """Refuse what could make reading or using the schema fetch, recurse or stall, and what
    is over OpenAI's size limits, naming the path. Runs before anything recursive."""
    if (where := json_too_deep(schema, MAX_JSON_DEPTH)) is not None:
        raise _deep_problem(f"`{_short_path(where)}`")
    _refuse_unknown_dialect(schema)
    words = _resolution_words(schema)
    totals = _Totals()
    for node, parts in _schema_nodes(schema):
        here = json_path(parts)
        _refuse_resolution(schema, node, here, words, at_root=not parts)
        _refuse_unsafe_patterns(node, here, totals)
        _count_sizes(node, here, totals)


def _refuse_invalid(schema: dict) -> None:
    """Check `schema` against its draft's meta-schema (jsonschema's check_schema, made safe)."""
    meta = _meta_validator(validator_for(schema, default=Draft202012Validator))
    error = next(iter(meta.iter_errors(schema)), None)
    if error is not None:
        where = json_path([str(p) for p in error.path])
        raise SchemaProblem(f"Not a valid JSON Schema at `{where}`: {error.message}")


def check_schema(schema: dict) -> None:
    """Raise SchemaProblem, naming the path, unless `schema` is safe to read and use.

    The safety checks come first: they are iterative and bounded, and the meta-schema
    check after them recurses through the schema and compiles its patterns.
    """
    _refuse_unsafe(schema)
    _refuse_invalid(schema)
