"""Strict-mode checks and normalization of JSON Schemas."""

from __future__ import annotations

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
