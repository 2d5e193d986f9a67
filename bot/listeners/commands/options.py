"""Parsing `key=value` options at the start of a command's text: pure functions."""

from __future__ import annotations

import re

from bot.commands import normalize

_OPTION = re.compile(
    r'^(model|temperature|reasoning|constraint|description)=(?:"([^"]*)"|(\S+))\s*', re.IGNORECASE
)


def parse_options(text: str) -> tuple[dict[str, list[str]], str]:
    """Leading options and the rest: `model=gpt-4o constraint="Be brief" You are…`."""
    text = normalize(text)  # a no-op for commands (bot/commands.py did it), kept for direct callers
    options: dict[str, list[str]] = {}
    while True:
        m = _OPTION.match(text)
        if not m:
            return options, text
        options.setdefault(m.group(1).lower(), []).append(
            m.group(2) if m.group(2) is not None else m.group(3)
        )
        text = text[m.end() :]
