"""Reading JSONL line by line, so every parse failure points at the line to fix."""

from __future__ import annotations

import json
from typing import Any

from core.finetune.report import Problem

BOM = "\ufeff"


def _reject_constant(name: str) -> Any:
    # Python's json accepts NaN and Infinity; OpenAI's parser does not.
    raise ValueError(f"{name} is not valid JSON")


def _hint(line: str) -> str:
    """Spot the usual cause when a whole object does not fit on one line."""
    if line.strip() in {"{", "[", "}", "]", "},", "],"}:
        return " (the file looks pretty-printed: JSONL needs each example on a single line)"
    return ""


def parse_jsonl(text: str, *, file: str = "train") -> tuple[list[tuple[int, Any]], list[Problem]]:
    """Parse each non-blank line on its own, returning (line number, value) pairs and problems.

    Lines are split on newlines only: `str.splitlines` would also split on U+2028 and
    friends, which JSON allows raw inside strings, and so would report false errors.
    """
    records: list[tuple[int, Any]] = []
    problems: list[Problem] = []
    if text.startswith(BOM):
        text = text[1:]
        problems.append(
            Problem(
                line=1,
                severity="warning",
                code="bom",
                message="file starts with a byte-order mark; save it as UTF-8 without BOM",
                file=file,
            )
        )
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        try:
            records.append((number, json.loads(line, parse_constant=_reject_constant)))
        except json.JSONDecodeError as exc:
            message = f"invalid JSON at column {exc.colno}: {exc.msg}{_hint(line)}"
            problems.append(
                Problem(line=number, severity="error", code="invalid_json", message=message, file=file)
            )
        except (ValueError, RecursionError) as exc:
            message = f"invalid JSON: {exc}"
            problems.append(
                Problem(line=number, severity="error", code="invalid_json", message=message, file=file)
            )
    return records, problems
