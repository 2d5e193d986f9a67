"""Block Kit builders: small pure functions, tested on their output."""

from __future__ import annotations

import json
import re
from typing import Any

Block = dict[str, Any]

# Slack rejects a markdown block over 12,000 characters (cumulative per message);
# keep a margin for the continuation marker.
MARKDOWN_LIMIT = 11_500
SECTION_LIMIT = 3_000
FALLBACK_TEXT_LIMIT = 3_000
# Slack also refuses a message whose blocks hold more than about 12,000 characters of
# text in all (`msg_blocks_too_long`, undocumented), whatever each block's own limit.
# Every message we build stays under this budget; what Slack refuses anyway falls back
# (split, or attached as a file): see bot/streaming.py and bot/json_answers.py.
BLOCKS_BUDGET = 11_500
BLOCKS_REFUSED = frozenset({"msg_blocks_too_long", "invalid_blocks"})
MORE = "…and {n} more"


def text_size(value: Any) -> int:
    """Characters of text in blocks, counted as Slack counts them for its total limit."""
    if isinstance(value, dict):
        return sum(len(v) if k == "text" and isinstance(v, str) else text_size(v) for k, v in value.items())
    if isinstance(value, list):
        return sum(text_size(v) for v in value)
    return 0


_BROADCAST = re.compile(r"<!(?!date\^)")


def defang(text: str) -> str:
    """Model output can't ping a channel: `<!channel>`, `<!here>`, `<!everyone>` and user
    groups become text. A user can ask the model to repeat them (or a document it reads
    can), so its answers are treated like user text for these tokens. Mentions of single
    users (`<@U…>`) stay: action items name owners that way."""
    return _BROADCAST.sub("&lt;!", text)


def cut(text: str, limit: int) -> str:
    """`text` in at most `limit` characters, ending in "…" when cut.

    Never cuts inside a `<…>` token (a mention or link would turn into raw markup) or an
    `&…;` entity (an escaped `<` would turn into a bare `&l`).
    """
    if len(text) <= limit:
        return text
    head = text[: max(0, limit - 1)]
    opened = head.rfind("<")
    if opened > head.rfind(">") and len(head) - opened < 200:  # a real token is short; "a < b" isn't one
        head = head[:opened]
    amp = head.rfind("&")
    if amp > head.rfind(";") and len(head) - amp <= 8:
        head = head[:amp]
    return head + "…"


def split_text(text: str, limit: int) -> tuple[str, str]:
    """`text` in two at or before `limit`: at a paragraph or line break if there is one in
    the second half, never inside a `<…>` token."""
    if len(text) <= limit:
        return text, ""
    at = text.rfind("\n\n", 0, limit)
    if at < limit // 2:
        at = text.rfind("\n", 0, limit)
    if at < limit // 2:
        at = limit
        opened = text.rfind("<", 0, at)
        if opened > text.rfind(">", 0, at) and limit - opened < 200:  # a real token is short
            at = opened
    return text[:at], text[at:].lstrip("\n")


def cut_lines(lines: list[str], limit: int) -> str:
    """Whole lines up to `limit` characters; a cut list ends with "…and N more"."""
    if not lines:
        return ""
    reserve = len(MORE.format(n=len(lines))) + 1 if len(lines) > 1 else 0
    kept: list[str] = []
    size = 0
    for i, line in enumerate(lines):
        last = i == len(lines) - 1
        line = cut(line, max(40, limit - (0 if last else reserve)))
        if size + len(line) + (0 if last else reserve) > limit:
            kept.append(MORE.format(n=len(lines) - i))
            break
        kept.append(line)
        size += len(line) + 1
    return "\n".join(kept)


def escape(text: str) -> str:
    """User text shown as typed: `<!channel>`, `<@U…>` and `<https://evil|docs>` stop being markup.

    Slack's own rule: escape `&`, `<` and `>` (and nothing else) in text we post.
    """
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def markdown(text: str) -> Block:
    """Model output as Slack renders standard Markdown (headings, tables, code)."""
    return {"type": "markdown", "text": cut(text, MARKDOWN_LIMIT) or " "}


def context_line(*parts: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(p for p in parts if p)}]}


def answer_footer(*, persona: str, model: str, notes: tuple[str, ...] = ()) -> list[Block]:
    """The small line under every answer: which persona and model produced it."""
    return [context_line(f"Persona: *{persona}*", f"Model: `{model}`", *notes)]


def answer_blocks(text: str, *, footer: list[Block] | None = None) -> list[Block]:
    return [markdown(text)] + list(footer or [])


def notice(text: str) -> list[Block]:
    return [section(text)]


def section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": cut(text, SECTION_LIMIT)}}


def fallback_text(text: str) -> str:
    """Plain `text` for notifications and clients that can't show blocks."""
    return text if len(text) <= FALLBACK_TEXT_LIMIT else text[: FALLBACK_TEXT_LIMIT - 1] + "…"


# -- assistant pane ----------------------------------------------------------------
def pane_greeting(*, persona: str, domain: str, description: str, view: str = "") -> tuple[str, list[Block]]:
    """The first message in a new assistant-pane thread: who answers, how to steer it, and
    whether the channel in view could be read (`view`: our own markup, from messages.py)."""
    who = f"*{escape(persona)}*" + (f" ({escape(cut(domain, 200))})" if domain else "")
    text = f"Hi! I'm Threadwise, answering as {who}: {escape(cut(description, 300))}"
    hint = "Ask anything, or pick a prompt below. `persona <name>` switches persona in this thread."
    return text, [section(text)] + ([context_line(view)] if view else []) + [context_line(hint)]


def pane_title(question: str, limit: int = 80) -> str:
    """A pane thread's title from its first question: one line, cut on a word."""
    line = " ".join(question.split())
    if len(line) <= limit:
        return line
    return line[: limit - 1].rsplit(" ", 1)[0] + "…"


# -- modals -----------------------------------------------------------------------
MENU_LIMIT = 100  # options in a static menu


def options(values: list[str]) -> list[dict]:
    """A static menu's options: the first 100 (Slack's limit), labels cut to 75 characters."""
    return [
        {"text": {"type": "plain_text", "text": cut(v, 75)}, "value": v} for v in list(values)[:MENU_LIMIT]
    ]


def modal(
    callback_id: str, title: str, submit: str, blocks: list[Block], metadata: dict | None = None
) -> dict:
    return {
        "type": "modal",
        "callback_id": callback_id,
        "title": {"type": "plain_text", "text": title},
        "submit": {"type": "plain_text", "text": submit},
        "close": {"type": "plain_text", "text": "Cancel"},
        "private_metadata": json.dumps(metadata or {}),
        "blocks": blocks,
    }


def input_block(block_id: str, label: str, element: dict, *, optional: bool = False, hint: str = "") -> Block:
    block: Block = {
        "type": "input",
        "block_id": block_id,
        "optional": optional,
        "label": {"type": "plain_text", "text": label},
        "element": element,
    }
    if hint:
        block["hint"] = {"type": "plain_text", "text": hint}
    return block


def text_input(
    action_id: str, *, multiline: bool = False, max_length: int = 3000, placeholder: str = ""
) -> dict:
    element: dict = {
        "type": "plain_text_input",
        "action_id": action_id,
        "multiline": multiline,
        "max_length": max_length,
    }
    if placeholder:
        element["placeholder"] = {"type": "plain_text", "text": placeholder}
    return element


# -- personas ---------------------------------------------------------------------

PERSONA_SELECT_ACTION = "persona_select"


def persona_select(names: list[str], *, current: str) -> Block:
    """A menu on a thread's first reply: switch this thread's persona."""
    choices = options(names)
    element: dict[str, Any] = {
        "type": "static_select",
        "action_id": PERSONA_SELECT_ACTION,
        "placeholder": {"type": "plain_text", "text": "Switch persona for this thread"},
        "options": choices,
    }
    match = [o for o in choices if o["value"] == current]
    if match:
        element["initial_option"] = match[0]
    return {"type": "actions", "block_id": "persona_menu", "elements": [element]}


def persona_list(
    builtins: list[tuple[str, str]], custom: list[tuple[str, str]], *, active: str, active_scope: str
) -> list[Block]:
    """The `/persona` listing: name and one line each, and what's active here."""

    def lines(items: list[tuple[str, str]]) -> list[str]:
        return [f"• *{name}*{' ✅' if name == active else ''} — {cut(desc, 300)}" for name, desc in items]

    out: list[Block] = [
        {"type": "header", "text": {"type": "plain_text", "text": "Personas"}},
        section(f"Active in this channel: *{active}* (set {active_scope})"),
        section("*Built-in*\n" + "\n".join(lines(builtins))),
    ]
    if custom:
        # Many personas: whole lines in as many sections as the message budget allows.
        room = BLOCKS_BUDGET - text_size(out) - 300
        listed = cut_lines(lines(custom), room)
        chunk = "*Custom*"
        for line in listed.split("\n"):
            if len(chunk) + len(line) + 1 > SECTION_LIMIT:
                out.append(section(chunk))
                chunk = ""
            chunk = f"{chunk}\n{line}" if chunk else line
        out.append(section(chunk))
    out.append(
        context_line(
            "`/persona <name> [domain]` sets this channel's default",
            "`@Threadwise persona <name>` switches one thread",
        )
    )
    return out[:50]


def optimize_variants(persona: str, variants: list[dict], token: str) -> list[Block]:
    """Variants side by side with their scores; each but the original has an Adopt button."""
    out: list[Block] = [
        {"type": "header", "text": {"type": "plain_text", "text": f"Prompt variants for {persona}"[:150]}},
        context_line(
            "Scored 1-10 on clarity, specificity, conciseness and completeness. Nothing changes until you adopt one."
        ),
    ]
    # Each prompt gets an equal share of the message budget (several 2,400-char prompts
    # would pass Slack's total limit).
    share = min(2400, (BLOCKS_BUDGET - 1500) // max(1, len(variants)))
    for i, v in enumerate(variants):
        s = v["scores"]
        total = sum(s.values())
        label = "Original" if i == 0 else f"Variant {i}"
        score_line = " · ".join(f"{k} {val}" for k, val in s.items())
        section: Block = {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": cut(
                    f"*{label}* — total {total}/40 ({score_line})\n>"
                    + cut(escape(v["prompt"]), share).replace("\n", "\n>"),
                    SECTION_LIMIT,
                ),
            },
        }
        if i > 0:
            section["accessory"] = {
                "type": "button",
                "action_id": f"adopt_prompt_{i}",
                "text": {"type": "plain_text", "text": "Adopt"},
                "style": "primary",
                "value": f"{token}:{i}",
                "confirm": {
                    "title": {"type": "plain_text", "text": "Adopt this prompt?"},
                    "text": {
                        "type": "mrkdwn",
                        "text": f"Replace the system prompt of *{persona}* with {label}."[:300],
                    },
                    "confirm": {"type": "plain_text", "text": "Adopt"},
                    "deny": {"type": "plain_text", "text": "Cancel"},
                },
            }
        out += [section, {"type": "divider"}]
    return out[:50]


# -- structured answers -------------------------------------------------------------

RECORD_LIMIT = 30


def _record_lists(data: Any) -> list[tuple[str, list[dict]]]:
    if isinstance(data, list) and data and all(isinstance(x, dict) for x in data):
        return [("items", data)]
    if isinstance(data, dict):
        return [
            (k, v)
            for k, v in data.items()
            if isinstance(v, list) and v and all(isinstance(x, dict) for x in v)
        ]
    return []


def _cell(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(_cell(v) for v in value) or "—"
    if value is None or value == "":
        return "—"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_cell(v)}" for k, v in value.items())
    return str(value)


def readable(data: Any) -> str:
    """Lists of records as bullets people can read, beside the raw JSON."""
    parts = []
    for key, rows in _record_lists(data):
        lines = [f"**{key.replace('_', ' ').capitalize()}** ({len(rows)})"]
        for row in rows[:RECORD_LIMIT]:
            first, *rest = list(row.items()) or [("", "")]
            detail = " · ".join(f"{k}: {_cell(v)}" for k, v in rest)
            lines.append(f"- **{_cell(first[1])}**" + (f" — {detail}" if detail else ""))
        if len(rows) > RECORD_LIMIT:
            lines.append(f"- …and {len(rows) - RECORD_LIMIT} more in the JSON")
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def json_answer(
    data: Any, *, question: str, user: str, schema: str, footer: list[Block]
) -> tuple[list[Block], bool]:
    """The JSON answer: who asked what, a readable rendering, and the pretty JSON.

    Everything must fit Slack's total text budget beside the question and the footer;
    when the JSON doesn't, only the rendering is shown and the second value is True: the
    caller attaches the full JSON as a file.
    """
    import json as _json

    head = section(asked_line(user=user, schema=schema, question=question))
    room = BLOCKS_BUDGET - text_size([head, *footer]) - 100
    body = readable(data)
    inline = (
        body + "\n\n" if body else ""
    ) + f"```json\n{_json.dumps(data, indent=2, ensure_ascii=False)}\n```"
    attached = len(inline) > min(room, MARKDOWN_LIMIT)
    if attached:
        note = "_The full JSON is attached as a file in the thread._"
        body = cut(body, min(room, MARKDOWN_LIMIT) - len(note) - 2)
        inline = (body + "\n\n" if body else "") + note
    return [head, markdown(defang(inline)), *footer], attached


def asked_line(*, user: str, schema: str, question: str) -> str:
    """Who asked what, above a JSON answer; the question is the asker's text, shown literally."""
    if not question:
        return f"<@{user}> asked for `{schema}`"
    return f"<@{user}> asked (schema `{schema}`): {escape(question)}"


def schema_list(items: list[tuple[str, str, bool]]) -> list[Block]:
    lines = [
        f"• `{name}`{' (built-in)' if builtin else ''} — {escape(desc) if desc else 'no description'}"
        for name, desc, builtin in items
    ]
    return [
        {"type": "header", "text": {"type": "plain_text", "text": "JSON schemas"}},
        section(cut_lines(lines, SECTION_LIMIT)),
        context_line("`/ask-json <schema> <question>` · or pass an inline JSON Schema instead of a name"),
    ]


# -- feedback -----------------------------------------------------------------------

FEEDBACK_GOOD, FEEDBACK_BAD = "feedback_good", "feedback_bad"


def feedback_buttons(thread_ts: str) -> Block:
    """👍 / 👎 on every answer; the rated message's own ts comes with the click."""
    return {
        "type": "actions",
        "block_id": "feedback",
        "elements": [
            {
                "type": "button",
                "action_id": FEEDBACK_GOOD,
                "text": {"type": "plain_text", "text": "👍", "emoji": True},
                "value": thread_ts,
            },
            {
                "type": "button",
                "action_id": FEEDBACK_BAD,
                "text": {"type": "plain_text", "text": "👎", "emoji": True},
                "value": thread_ts,
            },
        ],
    }
