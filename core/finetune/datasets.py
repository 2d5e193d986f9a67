"""Building chat fine-tuning examples from what users already have: rated answers and Q&A files.

The output is the plain chat format (`{"messages": [...]}`) that `validate_dataset`
checks and OpenAI trains on. Input problems are returned as sentences with row or line
numbers, so a user can fix their spreadsheet without reading a stack trace.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from core.finetune.jsonl import parse_jsonl

# Appended by core.conversations when a streamed answer was cut off: never a good example.
INTERRUPTED_MARKER = "[answer interrupted]"
_CONTEXT_ROLES = ("user", "assistant")
_DELIMITERS = ",;\t"


def _clean(message: dict) -> dict:
    content = message["content"]
    if message["role"] == "assistant" and content.rstrip().endswith(INTERRUPTED_MARKER):
        content = content.rstrip()[: -len(INTERRUPTED_MARKER)].rstrip()
    return {"role": message["role"], "content": content}


def conversation_examples(messages: list[dict], rated: list[int], *, system: str) -> list[dict]:
    """One example per assistant message rated good, with the conversation that led to it.

    `messages` is stored history; bookkeeping keys (tokens, ts, user, ...) are dropped
    and only user and assistant turns with text are kept, since our own system prompt
    goes first. Earlier assistant turns get `"weight": 0`: OpenAI trains on every
    assistant message of an example by default, and only the rated answer was vouched
    for. Indexes that are out of range, not assistant messages, empty, or answers that
    were interrupted are skipped.
    """
    examples = []
    for index in sorted(set(rated)):
        if not 0 <= index < len(messages):
            continue
        target = messages[index]
        if not isinstance(target, dict) or target.get("role") != "assistant":
            continue
        content = target.get("content")
        if not isinstance(content, str) or not content.strip():
            continue
        if content.rstrip().endswith(INTERRUPTED_MARKER):
            continue
        convo: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
        for message in messages[:index]:
            if (
                isinstance(message, dict)
                and message.get("role") in _CONTEXT_ROLES
                and isinstance(message.get("content"), str)
                and message["content"].strip()
            ):
                cleaned = _clean(message)
                if cleaned["role"] == "assistant":
                    cleaned["weight"] = 0
                convo.append(cleaned)
        if not any(m["role"] == "user" for m in convo):
            continue  # an answer to nothing teaches nothing
        convo.append({"role": "assistant", "content": content})
        examples.append({"messages": convo})
    return examples


def _example(system: str, question: str, answer: str, context: str) -> dict:
    user = f"Context:\n{context}\n\nQuestion: {question}" if context else question
    messages = [{"role": "system", "content": system}] if system else []
    messages += [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
    return {"messages": messages}


def _text(value: Any) -> str | None:
    """A cell or JSON value as stripped text; numbers are accepted, other types are not."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int | float):
        return str(value)
    return None


def _missing(question: str, answer: str) -> str:
    absent = [name for name, value in (("question", question), ("answer", answer)) if not value]
    return "missing " + " and ".join(absent)


def _header(line: str, delimiter: str) -> list[str]:
    return [c.strip().lower() for c in next(csv.reader([line], delimiter=delimiter), [])]


def _delimiter(text: str) -> str:
    """The delimiter whose split of the header has question and answer columns.

    csv.Sniffer guesses first; its guess is checked against the header and the
    candidates are tried in turn when it is wrong or gives up (it often does on small
    files), since a spreadsheet saved in a European locale uses `;`.
    """
    first = text.split("\n", 1)[0].rstrip("\r")
    candidates = list(_DELIMITERS)
    try:
        sniffed = csv.Sniffer().sniff(text[:4096], delimiters=_DELIMITERS).delimiter
        candidates.insert(0, sniffed)
    except csv.Error:
        pass
    for delimiter in candidates:
        columns = _header(first, delimiter)
        if "question" in columns and "answer" in columns:
            return delimiter
    return candidates[0]


def _qa_csv(text: str, system: str) -> tuple[list[dict], list[str]]:
    delimiter = _delimiter(text)
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    header = [c.strip().lower() for c in next(reader, [])]
    if "question" not in header or "answer" not in header:
        found = ", ".join(c for c in header if c) or "none"
        return [], [f"line 1: the header needs 'question' and 'answer' columns (found: {found})"]
    q, a = header.index("question"), header.index("answer")
    c = header.index("context") if "context" in header else None
    examples: list[dict] = []
    problems: list[str] = []
    row_number = 0
    while True:
        start = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            problems.append(f"line {start}: cannot read the CSV from here on: {exc}")
            break
        if not any(cell.strip() for cell in cells):
            continue
        row_number += 1

        def cell(i: int | None, cells: list[str] = cells) -> str:
            return cells[i].strip() if i is not None and i < len(cells) else ""

        question, answer, context = cell(q), cell(a), cell(c)
        if not question or not answer:
            problems.append(f"row {row_number} (line {start}): {_missing(question, answer)}")
            continue
        examples.append(_example(system, question, answer, context))
    return examples, problems


def _qa_jsonl(text: str, system: str) -> tuple[list[dict], list[str]]:
    records, parse_problems = parse_jsonl(text)
    problems = {p.line: f"line {p.line}: {p.message}" for p in parse_problems if p.severity == "error"}
    examples: list[tuple[int, dict]] = []
    for line, record in records:
        if not isinstance(record, dict):
            problems[line] = f"line {line}: expected a JSON object with question and answer"
            continue
        question, answer, context = (_text(record.get(k)) for k in ("question", "answer", "context"))
        if question is None or answer is None or context is None:
            problems[line] = f"line {line}: question, answer and context must be text"
            continue
        if not question or not answer:
            problems[line] = f"line {line}: {_missing(question, answer)}"
            continue
        examples.append((line, _example(system, question, answer, context)))
    return [e for _, e in examples], [problems[line] for line in sorted(problems)]


def qa_examples(text: str, *, fmt: str, system: str) -> tuple[list[dict], list[str]]:
    """Examples from question/answer pairs (optional context), plus problems found.

    `fmt` is "csv" (a header row with question, answer and optionally context; `,`,
    `;` or tab separated; a BOM is fine) or "jsonl" (one object per line with the same
    keys). Rows with problems are reported and left out; the rest are still returned.
    """
    text = text.lstrip("\ufeff")
    if fmt == "csv":
        return _qa_csv(text, system)
    if fmt == "jsonl":
        return _qa_jsonl(text, system)
    raise ValueError(f"unknown format {fmt!r}: use 'csv' or 'jsonl'")


def to_jsonl(examples: list[dict]) -> str:
    """Compact JSONL, one example per line with a trailing newline; non-ASCII kept readable."""
    return "".join(json.dumps(e, ensure_ascii=False, separators=(",", ":")) + "\n" for e in examples)
