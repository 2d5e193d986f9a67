"""Parsing `key=value` options at the start of a command's text: pure functions."""

from __future__ import annotations

import re

_OPTION = re.compile(r'^(model|temperature|constraint|description)=(?:"([^"]*)"|(\S+))\s*', re.IGNORECASE)


def normalize_quotes(text: str) -> str:
    return text.replace("\u201c", '"').replace("\u201d", '"').replace("\u2018", "'").replace("\u2019", "'")


def parse_options(text: str) -> tuple[dict[str, list[str]], str]:
    """Leading options and the rest: `model=gpt-4o constraint="Be brief" You are…`."""
    text = normalize_quotes(text).strip()
    options: dict[str, list[str]] = {}
    while True:
        m = _OPTION.match(text)
        if not m:
            return options, text
        options.setdefault(m.group(1).lower(), []).append(
            m.group(2) if m.group(2) is not None else m.group(3)
        )
        text = text[m.end() :]
