"""Block Kit builders are pure: checked on their output, and against slack_sdk's models."""

from __future__ import annotations

from bot import blocks
from bot.listeners.commands.options import parse_options
from bot.mentions import parse_command, strip_mention
from tests.scenarios.blockkit import assert_valid_blocks


def test_answer_blocks_fit_slack_limits():
    out = blocks.answer_blocks("x" * 20_000, footer=blocks.answer_footer(persona="teacher", model="gpt-4o"))
    assert len(out[0]["text"]) == blocks.MARKDOWN_LIMIT
    assert_valid_blocks(out)


def test_readable_rendering_of_records():
    data = {"items": [{"task": "Write notes", "owner": None, "tags": ["a", "b"]}] * 35}
    text = blocks.readable(data)
    assert text.startswith("**Items** (35)")
    assert "- **Write notes** — owner: — · tags: a, b" in text
    assert text.endswith("…and 5 more in the JSON")
    assert blocks.readable({"summary": "no records"}) == ""


def test_persona_select_marks_the_current_one():
    block = blocks.persona_select(["default", "teacher"], current="teacher")
    assert block["elements"][0]["initial_option"]["value"] == "teacher"
    assert_valid_blocks([block])


def test_persona_list_and_schema_list_are_valid():
    assert_valid_blocks(blocks.persona_list([("default", "d")], [("x", "y")], active="x", active_scope="s"))
    assert_valid_blocks(blocks.schema_list([("summary", "s", True)]))


def test_mention_parsing():
    assert strip_mention("<@UBOT> hi <@U2>", "UBOT") == "hi <@U2>"
    assert parse_command("reset").name == "reset"
    assert parse_command("help me with X") is None  # a question, not a command
    assert parse_command("persona expert tax").args == "expert tax"


def test_option_parsing():
    opts, rest = parse_options('model=gpt-4o constraint="Be kind" constraint=\u201cCite\u201d You are nice.')
    assert opts == {"model": ["gpt-4o"], "constraint": ["Be kind", "Cite"]} and rest == "You are nice."
