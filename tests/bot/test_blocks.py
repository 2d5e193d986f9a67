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


def test_escape_turns_markup_into_text():
    assert (
        blocks.escape("<!channel> & <https://evil|docs>")
        == "&lt;!channel&gt; &amp; &lt;https://evil|docs&gt;"
    )


def test_cut_never_splits_a_token_or_an_entity():
    text = "see <@U123456> now"
    for limit in range(5, len(text)):
        out = blocks.cut(text, limit)
        assert len(out) <= limit and out.endswith("…")
        assert out.count("<") == out.count(">")
    assert blocks.cut("a &lt;b", 5) == "a …"
    assert blocks.cut("short", 10) == "short"


def test_cut_lines_says_how_many_were_left_out():
    lines = [f"• <@U{i:05d}> did thing {i}" for i in range(500)]
    out = blocks.cut_lines(lines, 3000)
    assert len(out) <= 3000
    kept = out.split("\n")
    assert kept[-1] == f"…and {500 - (len(kept) - 1)} more"
    assert all(line in lines for line in kept[:-1])
    assert blocks.cut_lines(lines[:3], 3000) == "\n".join(lines[:3])


def test_split_text_prefers_paragraphs_and_respects_tokens():
    text = "a" * 60 + "\n\n" + "b" * 60
    assert blocks.split_text(text, 100) == ("a" * 60, "b" * 60)
    head, rest = blocks.split_text("x" * 95 + "<@U123>" + "y" * 10, 100)
    assert head == "x" * 95 and rest.startswith("<@U123>")


def test_json_answer_stays_under_slacks_total_beside_a_long_question():
    footer = blocks.answer_footer(persona="default", model="m")
    data = {"summary": "s" * 10_000}
    layout, attached = blocks.json_answer(
        data, question="q" * 2000, user="U1", schema="summary", footer=footer
    )
    assert attached and blocks.text_size(layout) <= blocks.BLOCKS_BUDGET
    small, attached = blocks.json_answer({"a": 1}, question="q", user="U1", schema="s", footer=footer)
    assert not attached and '"a": 1' in small[1]["text"]


def test_many_custom_personas_fit_one_message():
    custom = [(f"persona-{i:03d}", "d" * 200) for i in range(200)]
    out = blocks.persona_list([("default", "d")], custom, active="default", active_scope="s")
    assert_valid_blocks(out)
    assert blocks.text_size(out) <= blocks.BLOCKS_BUDGET
    assert "more" in out[-2]["text"]["text"]


def test_a_lone_less_than_sign_doesnt_swallow_the_text():
    text = "Compare a < b, " + "then more words " * 700
    head, rest = blocks.split_text(text, 8000)
    assert len(head) > 7000 and head + rest == text
    assert len(blocks.cut(text, 5000)) > 4800


def test_pane_greeting_names_the_persona_and_escapes_what_admins_wrote():
    text, layout = blocks.pane_greeting(persona="expert", domain="<!channel> tax", description="Knows *tax*")
    assert "answering as *expert* (&lt;!channel&gt; tax)" in text
    assert layout[0]["text"]["text"] == text and layout[1]["type"] == "context"


def test_pane_title_is_one_line_cut_on_a_word():
    assert blocks.pane_title("How  do we\ndeploy?") == "How do we deploy?"
    long = "word " * 40
    title = blocks.pane_title(long)
    assert len(title) <= 80 and title.endswith("…") and not title.endswith(" …")
