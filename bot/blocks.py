"""Block Kit builders: small pure functions, tested on their output."""

from __future__ import annotations

from typing import Any

Block = dict[str, Any]

# Slack rejects a markdown block over 12,000 characters (cumulative per message);
# keep a margin for the continuation marker.
MARKDOWN_LIMIT = 11_500
SECTION_LIMIT = 3_000
FALLBACK_TEXT_LIMIT = 3_000


def markdown(text: str) -> Block:
    """Model output as Slack renders standard Markdown (headings, tables, code)."""
    return {"type": "markdown", "text": text[:MARKDOWN_LIMIT] or " "}


def context_line(*parts: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(p for p in parts if p)}]}


def answer_footer(*, persona: str, model: str, notes: tuple[str, ...] = ()) -> list[Block]:
    """The small line under every answer: which persona and model produced it."""
    return [context_line(f"Persona: *{persona}*", f"Model: `{model}`", *notes)]


def answer_blocks(text: str, *, footer: list[Block] | None = None) -> list[Block]:
    return [markdown(text)] + list(footer or [])


def notice(text: str) -> list[Block]:
    return [{"type": "section", "text": {"type": "mrkdwn", "text": text[:SECTION_LIMIT]}}]


def fallback_text(text: str) -> str:
    """Plain `text` for notifications and clients that can't show blocks."""
    return text if len(text) <= FALLBACK_TEXT_LIMIT else text[: FALLBACK_TEXT_LIMIT - 1] + "…"


# -- personas ---------------------------------------------------------------------

PERSONA_SELECT_ACTION = "persona_select"


def persona_select(names: list[str], *, current: str) -> Block:
    """A menu on a thread's first reply: switch this thread's persona."""
    options = [{"text": {"type": "plain_text", "text": n[:75]}, "value": n} for n in names[:100]]
    element: dict[str, Any] = {
        "type": "static_select",
        "action_id": PERSONA_SELECT_ACTION,
        "placeholder": {"type": "plain_text", "text": "Switch persona for this thread"},
        "options": options,
    }
    match = [o for o in options if o["value"] == current]
    if match:
        element["initial_option"] = match[0]
    return {"type": "actions", "block_id": "persona_menu", "elements": [element]}


def persona_list(
    builtins: list[tuple[str, str]], custom: list[tuple[str, str]], *, active: str, active_scope: str
) -> list[Block]:
    """The `/persona` listing: name and one line each, and what's active here."""

    def lines(items: list[tuple[str, str]]) -> str:
        return "\n".join(f"• *{name}*{' ✅' if name == active else ''} — {desc}" for name, desc in items)

    out: list[Block] = [
        {"type": "header", "text": {"type": "plain_text", "text": "Personas"}},
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": f"Active in this channel: *{active}* (set {active_scope})"[:SECTION_LIMIT],
            },
        },
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": ("*Built-in*\n" + lines(builtins))[:SECTION_LIMIT]},
        },
    ]
    if custom:
        text = "*Custom*\n" + lines(custom)
        for start in range(0, len(text), SECTION_LIMIT):  # many personas: several sections
            out.append(
                {"type": "section", "text": {"type": "mrkdwn", "text": text[start : start + SECTION_LIMIT]}}
            )
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
    for i, v in enumerate(variants):
        s = v["scores"]
        total = sum(s.values())
        label = "Original" if i == 0 else f"Variant {i}"
        score_line = " · ".join(f"{k} {val}" for k, val in s.items())
        section: Block = {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": f"*{label}* — total {total}/40 ({score_line})\n>{v['prompt'][:2400].replace(chr(10), chr(10) + '>')}"[
                    :SECTION_LIMIT
                ],
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
    data: Any, *, question: str, user: str, schema: str, footer: list[Block], attached: bool = False
) -> list[Block]:
    """The JSON answer: who asked what, a readable rendering, and the pretty JSON.

    When the JSON is too big for a message (`attached`), only the rendering is shown and
    the full JSON goes in a file.
    """
    import json as _json

    pretty = _json.dumps(data, indent=2, ensure_ascii=False)
    head = (
        f"<@{user}> asked (schema `{schema}`): {question}" if question else f"<@{user}> asked for `{schema}`"
    )
    body = readable(data)
    if not attached:
        body = (body + "\n\n" if body else "") + f"```json\n{pretty}\n```"
    else:
        body = (body + "\n\n" if body else "") + "_The full JSON is attached as a file in the thread._"
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": head[:SECTION_LIMIT]}},
        markdown(body),
        *footer,
    ]


def json_fits(data: Any) -> bool:
    import json as _json

    pretty = _json.dumps(data, indent=2, ensure_ascii=False)
    return len(pretty) + len(readable(data)) + 200 <= MARKDOWN_LIMIT


def schema_list(items: list[tuple[str, str, bool]]) -> list[Block]:
    lines = [
        f"• `{name}`{' (built-in)' if builtin else ''} — {desc or 'no description'}"
        for name, desc, builtin in items
    ]
    return [
        {"type": "header", "text": {"type": "plain_text", "text": "JSON schemas"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)[:SECTION_LIMIT]}},
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
