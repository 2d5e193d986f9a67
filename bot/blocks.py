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
