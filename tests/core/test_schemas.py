"""Strict-mode checks and normalization of JSON Schemas."""

from __future__ import annotations

import time

import pytest

from core import schemas
from core.schemas import SchemaProblem
from core.structured import validation_errors


def test_builtins_are_already_strict():
    for s in schemas.BUILTINS.values():
        normalized, notes = schemas.strictify(s.schema)
        assert notes == [] and normalized == s.schema, s.name


def test_nested_objects_are_normalized_with_notes():
    schema = {
        "type": "object",
        "properties": {
            "people": {
                "type": "array",
                "items": {"type": "object", "properties": {"name": {"type": "string"}}},
            }
        },
    }
    out, notes = schemas.strictify(schema)
    item = out["properties"]["people"]["items"]
    assert item["additionalProperties"] is False and item["required"] == ["name"]
    assert item["properties"]["name"]["type"] == ["string", "null"]
    assert any("$.people[]" in n for n in notes)
    assert schema["properties"]["people"]["items"].get("additionalProperties") is None  # input untouched


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"type": "object", "properties": {"a": {"allOf": [{"type": "string"}]}}}, "`$.a`: `allOf`"),
        (
            {
                "type": "object",
                "properties": {"a": {"type": "object", "additionalProperties": {"type": "string"}}},
            },
            "`$.a`",
        ),
        ({"type": "string"}, "root must have"),
        ({"type": "object", "properties": {"a": {"type": 5}}}, "Not a valid JSON Schema"),
    ],
)
def test_unsupported_schemas_name_the_path(schema, message):
    with pytest.raises(SchemaProblem, match=message.replace("$", r"\$").replace("[", r"\[")):
        schemas.strictify(schema)


def test_parse_errors_give_line_and_column():
    with pytest.raises(SchemaProblem, match="line 1, column 16"):
        schemas.parse_inline('{"type": "obj" "x"}')


def test_smart_quotes_from_slack_are_accepted():
    assert schemas.parse_inline("{\u201ctype\u201d: \u201cobject\u201d}") == {"type": "object"}


def test_split_schema_arg_handles_inline_json_with_braces_in_strings():
    arg, question = schemas.split_schema_arg('{"type": "object", "description": "a } b"} what now?')
    assert arg.endswith('"a } b"}') and question == "what now?"
    assert schemas.split_schema_arg("summary the meeting") == ("summary", "the meeting")


def test_validation_errors_point_at_the_field():
    errors = validation_errors({"items": [{"task": 1}]}, schemas.BUILTINS["action_items"].schema)
    assert errors[0].startswith("$.items[0]")


def _object(properties: dict, **extra) -> dict:
    return {"type": "object", "properties": properties, **extra}


def _refusal(schema: dict) -> str:
    with pytest.raises(SchemaProblem) as caught:
        schemas.strictify(schema)
    return str(caught.value)


@pytest.mark.parametrize(
    "ref",
    [
        "http://127.0.0.1:9/x",
        "https://example.com/schema.json",
        "file:///etc/passwd",
        "other.json",
        "other.json#/$defs/a",
        "//example.com/x",
        "#anchor",
    ],
)
def test_non_local_refs_are_refused_naming_the_path(ref):
    """A `$ref` that would make the bot fetch something (or look up an anchor) is refused
    when the schema is checked, naming where it is and what was refused."""
    text = _refusal(_object({"x": _object({"y": {"$ref": ref}})}))
    assert text.startswith("`$.x.y`: only local `$ref`s like `#/$defs/name` are allowed;")
    assert f"`{ref}` was refused (I never fetch schemas)" in text


def test_remote_ref_hidden_behind_a_local_pointer_is_refused():
    """A remote `$ref` tucked under a non-keyword and reached through a local pointer is
    still found: jsonschema would follow the pointer and then fetch."""
    schema = _object({"x": {"$ref": "#/hidden/inner"}}, hidden={"inner": {"$ref": "http://127.0.0.1:9/x"}})
    assert "`$.hidden.inner`: only local `$ref`s" in _refusal(schema)


def test_local_refs_must_point_at_a_schema_in_the_document():
    """Local `$ref`s work (definitions, recursion to the root); one pointing at nothing is
    refused up front instead of failing on every answer."""
    defs = {"$defs": {"name": {"type": "string"}}, "definitions": {"n": {"type": "integer"}}}
    ok = _object(
        {
            "a": {"$ref": "#/$defs/name"},
            "b": {"$ref": "#/definitions/n"},
            "c": {"anyOf": [{"$ref": "#"}, {"type": "null"}]},
        },
        required=["a", "b", "c"],
        **defs,
    )
    assert schemas.strictify(ok)[0]["properties"]["a"] == {"$ref": "#/$defs/name"}
    text = _refusal(_object({"a": {"$ref": "#/$defs/missing"}}, **defs))
    assert text == "`$.a`: `$ref` `#/$defs/missing` doesn't point at a schema in this one."


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        (_object({"a": {"$id": "sub.json", "type": "string"}}), "`$.a`: `$id` isn't supported"),
        (_object({"a": {"$anchor": "here", "type": "string"}}), "`$.a`: `$anchor` isn't supported"),
        (_object({"a": {"$dynamicRef": "#meta"}}), "`$.a`: `$dynamicRef` isn't supported"),
        (
            _object(
                {"a": {"id": "http://127.0.0.1:9/", "type": "string"}},
                **{"$schema": "http://json-schema.org/draft-04/schema#"},
            ),
            "`$.a`: `id` isn't supported",
        ),
        (_object({}, **{"$schema": "http://127.0.0.1:9/meta"}), "isn't a JSON Schema version I know"),
        (_object({}, **{"$schema": {"not": "a string"}}), "isn't a JSON Schema version I know"),
        (
            _object({"a": {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "string"}}),
            "`$.a`: `$schema` is only allowed at the root",
        ),
    ],
)
def test_keywords_that_change_where_refs_point_are_refused(schema, message):
    """`$id`, anchors, dynamic refs and unknown or nested `$schema`s would let a local-looking
    `$ref` (or the dialect) mean something else than what was checked; they are refused."""
    assert message in _refusal(schema)


def test_known_dialect_is_kept_and_validated_as_that_dialect():
    """A pasted draft-07 schema (`definitions`, `$schema`) still works: known meta-schemas
    are built in and never fetched; a bad one is named."""
    draft7 = "http://json-schema.org/draft-07/schema#"
    schema = _object({"a": {"$ref": "#/definitions/a"}}, required=["a"], definitions={"a": _object({})})
    out, _ = schemas.strictify({"$schema": draft7, **schema})
    assert out["$schema"] == draft7 and out["definitions"]["a"]["additionalProperties"] is False
    assert "Not a valid JSON Schema" in _refusal({"$schema": draft7, **_object({"a": {"type": "strng"}})})


def _nested(levels: int, wrap) -> dict:
    node: dict = {"type": "string"}
    for _ in range(levels):
        node = wrap(node)
    return node


@pytest.mark.parametrize(
    "wrap",
    [
        lambda n: _object({"a": n}),
        lambda n: {"type": "array", "items": n},
        lambda n: {"anyOf": [n, {"type": "null"}]},
        lambda n: {"type": "string", "enum": [[n]]},
    ],
    ids=["properties", "items", "anyOf", "enum"],
)
def test_schemas_nested_500_deep_are_refused_without_recursion_error(wrap):
    """A schema nested 500 levels deep (in any keyword, or in an enum value) is refused
    with a clear message; it used to raise RecursionError, which left the user unanswered."""
    schema = _object({"deep": _nested(500, wrap)})
    assert "the schema is nested more than 32 levels deep" in _refusal(schema)


def test_deeply_nested_text_is_refused_before_parsing():
    """Schema text nesting thousands of brackets is refused with where it happens, before
    json.loads (which recurses) reads it."""
    with pytest.raises(SchemaProblem, match=r"^At line 1, column 33: the schema is nested more than 32"):
        schemas.parse_inline("[" * 5000 + "]" * 5000)
    with pytest.raises(SchemaProblem, match="nested more than 32 levels"):
        schemas.parse_inline('{"type": "object", "properties": {"a": ' + '{"items": ' * 40 + "{}" + "}" * 42)


def _properties(n: int) -> dict:
    return _object({f"p{i}": {"type": "string"} for i in range(n)})


def _enums(n: int) -> dict:
    return _object(
        {f"e{i}": {"type": "integer", "enum": list(range(100 * i, 100 * i + 100))} for i in range(n // 100)}
    )


def _long_enum(chars_each: int) -> dict:
    return _object(
        {"pick": {"type": "string", "enum": [f"{i:03d}" + "x" * (chars_each - 3) for i in range(251)]}}
    )


def _long_names(total: int) -> dict:
    return _object({"a": {"type": "string", "const": "x" * (total - 1)}})  # + the property name "a"


@pytest.mark.parametrize(
    ("at_limit", "over", "message"),
    [
        (_properties(5000), _properties(5001), "`$`: the schema has more than 5,000 properties in all"),
        (_enums(1000), _enums(1100), "`$.e10`: the schema has more than 1,000 enum values in all"),
        (
            _long_enum(59),  # 251 values, 14,809 characters
            _long_enum(60),
            "`$.pick`: this enum has 251 values totalling 15,060 characters; strict mode allows at most 15,000",
        ),
        (_long_names(120_000), _long_names(120_001), "add up to more than 120,000 characters"),
    ],
    ids=["properties", "enum-values", "big-enum-length", "total-string-length"],
)
def test_openai_size_limits_are_enforced_up_front(at_limit, over, message):
    """A schema over OpenAI's documented strict-mode limits is refused with the limit and
    the path, instead of a vague rejection from the model service; one at them is fine."""
    schemas.strictify(at_limit)
    assert message in _refusal(over)


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("((a{100}){100}){100}", "is too large once its repeats are spelled out"),
        ("(?:a{65535}){65535}", "repeats something 65,535 times; the limit is 10,000"),
        ("(" * 400 + "a" + ")" * 400, "nests groups more than 20 deep"),
        ("a" * 1001, "is 1,001 characters long"),
        ("(?x) a # comment", "turns on verbose"),
        ("(unclosed", "isn't a valid regular expression"),
    ],
    ids=["repeat-bomb", "huge-repeat", "deep-groups", "long", "verbose", "invalid"],
)
def test_patterns_too_costly_to_compile_are_refused_quickly(pattern, message):
    """A `pattern` that would take seconds or gigabytes to compile (the regex engine spells
    counted repeats out), or overflow the parser's stack, is refused at once, by path."""
    started = time.perf_counter()
    text = _refusal(_object({"code": {"type": "string", "pattern": pattern}}))
    assert text.startswith("`$.code`: the pattern `") and message in text
    assert time.perf_counter() - started < 0.5


def test_common_schemas_from_docs_are_accepted():
    """A root `$id` (as in json-schema.org's examples) and long bounded patterns are fine."""
    schema = {
        "$id": "https://example.com/person.schema.json",
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {"code": {"type": "string", "pattern": "^[a-z0-9]{1,2000}$"}},
    }
    strict, notes = schemas.strictify(schema)
    assert "$id" not in strict and any("removed `$id`" in n for n in notes)
    with pytest.raises(schemas.SchemaProblem, match="isn't supported"):
        schemas.strictify(
            {"type": "object", "properties": {"x": {"$id": "https://e.com/x", "type": "string"}}}
        )
