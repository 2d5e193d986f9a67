"""Did fine-tuning help? Run held-out examples through the tuned and the base model and compare.

Two signals: token-overlap F1 against the reference answer (cheap and deterministic, but
blind to paraphrase) and, optionally, a judge model choosing the better answer (reads
meaning, but has biases). The judge sees the answers as "A" and "B" and which model is A
alternates from example to example, so a judge that favours the first answer it reads
does not favour one model.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from openai import AsyncOpenAI

from core import llm, structured
from core.finetune.budget import message_text
from core.schemas import NamedSchema

MAX_ANSWER_TOKENS = 2048
# Characters of each text shown to the judge and in previews: enough to judge, bounded cost.
JUDGE_TEXT_CHARS = 6000
PREVIEW_CHARS = 200
# Keys a chat request accepts on a message; training-only keys such as `weight` are rejected.
_REQUEST_KEYS = ("role", "content", "name", "tool_calls", "tool_call_id")

JUDGE_SCHEMA = NamedSchema(
    "judge_verdict",
    {
        "type": "object",
        "properties": {
            "winner": {"type": "string", "enum": ["A", "B", "tie"]},
            "reason": {"type": "string"},
        },
        "required": ["winner", "reason"],
        "additionalProperties": False,
    },
    "Which of two answers is better, and why.",
)

JUDGE_SYSTEM = (
    "You compare two assistant answers, A and B, to the same conversation. A reference answer "
    "shows what a good answer looks like. Prefer the answer that is more correct and complete "
    "and closer to the reference in substance, tone and format; length alone is not a merit. "
    "Answer 'tie' when neither is clearly better. Give a one-sentence reason."
)


@dataclass
class EvalRow:
    """One example's outcome. `judge` is "tuned", "base", "tie", or None when not judged."""

    index: int  # position in the `examples` list given to `compare` (0-based)
    prompt_preview: str
    reference: str
    tuned_answer: str
    base_answer: str
    tuned_f1: float
    base_f1: float
    judge: str | None = None
    judge_reason: str = ""


@dataclass
class EvalReport:
    """All rows plus the headline numbers; examples that failed are in `errors`, not `rows`."""

    tuned_model: str
    base_model: str
    n: int  # examples attempted
    rows: list[EvalRow] = field(default_factory=list)
    tuned_wins: int = 0
    base_wins: int = 0
    ties: int = 0
    # 0.0 when nothing was scored (see `rows`); `eval_summary` reports None then.
    tuned_mean_f1: float = 0.0
    base_mean_f1: float = 0.0
    errors: list[str] = field(default_factory=list)
    # model -> token counts spent (answers and the judge), for the usage counters
    spent: dict[str, dict[str, int]] = field(default_factory=dict)


def _spend(spent: dict[str, dict[str, int]], model: str, used: dict[str, int]) -> None:
    totals = spent.setdefault(model, {})
    for name, value in used.items():
        totals[name] = totals.get(name, 0) + value


def _tokens(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def token_f1(answer: str, reference: str) -> float:
    """SQuAD-style F1 of lowercase word tokens (multiset overlap); two empty texts score 1."""
    got, want = _tokens(answer), _tokens(reference)
    if not got or not want:
        return 1.0 if got == want else 0.0
    common = sum((Counter(got) & Counter(want)).values())
    if not common:
        return 0.0
    precision, recall = common / len(got), common / len(want)
    return 2 * precision * recall / (precision + recall)


def _text_of(message: Any) -> str:
    """Readable text of a request or response message, tool calls included."""
    if isinstance(message, dict):
        text = message_text(message)
        calls = message.get("tool_calls") or []
    else:
        text = getattr(message, "content", None) or getattr(message, "refusal", None) or ""
        calls = getattr(message, "tool_calls", None) or []
    parts = [text] if text else []
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else getattr(call, "function", None)
        if isinstance(function, dict):
            name, arguments = function.get("name"), function.get("arguments")
        else:
            name, arguments = getattr(function, "name", None), getattr(function, "arguments", None)
        parts.append(f"[tool call] {name}({arguments or ''})")
    return "\n".join(parts)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _preview(text: str) -> str:
    return _clip(" ".join(text.split()), PREVIEW_CHARS)


def split_example(example: Any) -> tuple[list[dict], dict]:
    """(prompt messages, reference message): the prompt is everything before the last assistant message.

    Prompt messages are cut down to the keys a chat request accepts. Raises ValueError
    saying what is wrong with an example that can't be used.
    """
    messages = example.get("messages") if isinstance(example, dict) else None
    if not isinstance(messages, list) or not messages:
        raise ValueError("no 'messages' list")
    last = max(
        (i for i, m in enumerate(messages) if isinstance(m, dict) and m.get("role") == "assistant"),
        default=None,
    )
    if last is None:
        raise ValueError("no assistant message to compare against")
    prompt = [{k: m[k] for k in _REQUEST_KEYS if k in m} for m in messages[:last] if isinstance(m, dict)]
    if not any(m.get("role") in ("user", "tool") for m in prompt):
        raise ValueError("nothing is asked before the last assistant message")
    return prompt, messages[last]


def _transcript(prompt: list[dict]) -> str:
    lines = []
    for message in prompt:
        lines.append(f"[{message.get('role')}]\n{_clip(_text_of(message), JUDGE_TEXT_CHARS)}")
    return "\n\n".join(lines)


def _describe(exc: BaseException) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return f"{llm.error_kind(exc)}: {body['message']}"
    return f"{type(exc).__name__}: {exc}"


async def _answer(
    client: AsyncOpenAI,
    model: str,
    prompt: list[dict],
    tools: Any,
    max_tokens: int,
    spent: dict[str, dict[str, int]],
) -> str:
    extra: dict[str, Any] = {"temperature": 0, "max_completion_tokens": max_tokens}
    if tools:
        extra["tools"] = tools
    response = await llm.complete(client, model=model, messages=prompt, **extra)
    if response.usage:
        _spend(spent, model, llm.usage_of(response.usage))
    return _text_of(response.choices[0].message)


async def _judge(
    client: AsyncOpenAI,
    judge_model: str,
    prompt: list[dict],
    reference: str,
    first: str,
    second: str,
    spent: dict[str, dict[str, int]],
) -> tuple[str, str]:
    """("A"|"B"|"tie", reason) from the judge; raises RuntimeError when it gives no usable verdict."""
    content = (
        f"Conversation:\n{_transcript(prompt)}\n\n"
        f"Reference answer:\n{_clip(reference, JUDGE_TEXT_CHARS)}\n\n"
        f"Answer A:\n{_clip(first, JUDGE_TEXT_CHARS)}\n\n"
        f"Answer B:\n{_clip(second, JUDGE_TEXT_CHARS)}"
    )
    answer = await structured.ask_json(
        client,
        model=judge_model,
        system=JUDGE_SYSTEM,
        messages=[{"role": "user", "content": content}],
        schema=JUDGE_SCHEMA,
        temperature=0,
        max_tokens=512,
    )
    _spend(spent, judge_model, answer.usage)
    if not answer.ok:
        raise RuntimeError(f"the judge refused: {answer.refusal}" if answer.refusal else answer.error)
    return answer.data["winner"], answer.data["reason"]


def tuned_is_a(index: int) -> bool:
    """Which model the judge reads first: the tuned one on even indexes, the base one on odd."""
    return index % 2 == 0


async def compare(
    client: AsyncOpenAI,
    *,
    tuned: str,
    base: str,
    examples: list[dict],
    n: int = 20,
    judge_model: str | None = None,
    concurrency: int = 4,
    max_tokens: int = MAX_ANSWER_TOKENS,
) -> EvalReport:
    """Answer the first `n` examples with both models (temperature 0) and score them.

    A failure on one example (an API error, a malformed example) is recorded in
    `errors` and the rest carry on; a judge failure keeps the row, unjudged.
    """
    chosen = examples[:n]
    gate = asyncio.Semaphore(max(1, concurrency))
    errors: dict[int, str] = {}
    spent: dict[str, dict[str, int]] = {}

    async def one(index: int, example: dict) -> EvalRow | None:
        try:
            prompt, reference_message = split_example(example)
        except ValueError as exc:
            errors[index] = f"example {index + 1}: {exc}"
            return None
        reference = _text_of(reference_message)
        tools = example.get("tools")
        async with gate:
            try:
                tuned_answer, base_answer = await asyncio.gather(
                    _answer(client, tuned, prompt, tools, max_tokens, spent),
                    _answer(client, base, prompt, tools, max_tokens, spent),
                )
            except Exception as exc:  # one bad example must not sink the evaluation
                errors[index] = f"example {index + 1}: {_describe(exc)}"
                return None
            row = EvalRow(
                index=index,
                prompt_preview=_preview(_text_of(prompt[-1]) if prompt else ""),
                reference=reference,
                tuned_answer=tuned_answer,
                base_answer=base_answer,
                tuned_f1=token_f1(tuned_answer, reference),
                base_f1=token_f1(base_answer, reference),
            )
            if judge_model and (failure := await _judge_row(client, judge_model, prompt, row, spent)):
                errors[index] = failure
        return row

    results = await asyncio.gather(*(one(i, ex) for i, ex in enumerate(chosen)))
    report = EvalReport(tuned_model=tuned, base_model=base, n=len(chosen), spent=spent)
    _tally(report, [row for row in results if row is not None], [errors[i] for i in sorted(errors)])
    return report


async def _judge_row(
    client: AsyncOpenAI, judge_model: str, prompt: list[dict], row: EvalRow, spent: dict[str, dict[str, int]]
) -> str | None:
    """Ask the judge about one scored row and record its verdict as "tuned", "base" or "tie".

    The judge reads "A" and "B", with the tuned model first on even rows (`tuned_is_a`),
    so its verdict is mapped back to a model here. A failing judge leaves the row
    unjudged but kept, since its F1 scores still count; the error text is returned.
    """
    a_is_tuned = tuned_is_a(row.index)
    answers = (row.tuned_answer, row.base_answer)
    first, second = answers if a_is_tuned else answers[::-1]
    try:
        winner, reason = await _judge(client, judge_model, prompt, row.reference, first, second, spent)
    except Exception as exc:
        row.judge_reason = "judge failed"
        return f"example {row.index + 1}: judge failed: {_describe(exc)}"
    if winner == "tie":
        row.judge = "tie"
    else:
        row.judge = "tuned" if (winner == "A") == a_is_tuned else "base"
    row.judge_reason = reason
    return None


def _tally(report: EvalReport, rows: list[EvalRow], errors: list[str]) -> None:
    """Fill in the report's rows and headline numbers.

    Wins count judged rows only and means cover scored rows only: an example that
    failed is in `errors`, and counting it as a loss (or an F1 of 0) would blame a
    model for an API error.
    """
    report.rows = rows
    report.errors = errors
    report.tuned_wins = sum(r.judge == "tuned" for r in rows)
    report.base_wins = sum(r.judge == "base" for r in rows)
    report.ties = sum(r.judge == "tie" for r in rows)
    if rows:
        report.tuned_mean_f1 = sum(r.tuned_f1 for r in rows) / len(rows)
        report.base_mean_f1 = sum(r.base_f1 for r in rows) / len(rows)


def eval_summary(report: EvalReport) -> dict:
    """Headline numbers for a message or JSON; means are None when no example could be scored."""
    judged = report.tuned_wins + report.base_wins + report.ties
    scored = bool(report.rows)
    return {
        "tuned_model": report.tuned_model,
        "base_model": report.base_model,
        "n": report.n,
        "scored": len(report.rows),
        "judged": judged,
        "tuned_wins": report.tuned_wins,
        "base_wins": report.base_wins,
        "ties": report.ties,
        "tuned_win_rate": report.tuned_wins / judged if judged else None,
        "tuned_mean_f1": report.tuned_mean_f1 if scored else None,
        "base_mean_f1": report.base_mean_f1 if scored else None,
        "f1_delta": report.tuned_mean_f1 - report.base_mean_f1 if scored else None,
        "errors": len(report.errors),
    }


def _f1(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in (text or "(empty)").splitlines() or ["(empty)"])


def format_eval(report: EvalReport) -> str:
    """The whole comparison as plain text, to attach as a file next to the summary message."""
    s = eval_summary(report)
    out = [
        f"Evaluation: {report.tuned_model} (tuned) vs {report.base_model} (base)",
        f"Examples: {s['scored']} scored of {report.n}"
        + (f", {len(report.errors)} with errors" if report.errors else ""),
        f"Mean token F1 vs reference: tuned {_f1(s['tuned_mean_f1'])}, base {_f1(s['base_mean_f1'])}",
    ]
    if s["judged"]:
        out.append(
            f"Judge: tuned wins {report.tuned_wins}, base wins {report.base_wins}, ties {report.ties} "
            f"(of {s['judged']} judged)"
        )
    else:
        out.append("Judge: not used")
    for row in report.rows:
        out += [
            "",
            "=" * 72,
            f"Example {row.index + 1}: {row.prompt_preview}",
            "Reference:",
            _indent(row.reference),
            f"Tuned answer (F1 {row.tuned_f1:.3f}):",
            _indent(row.tuned_answer),
            f"Base answer (F1 {row.base_f1:.3f}):",
            _indent(row.base_answer),
        ]
        if row.judge:
            out.append(f"Judge: {row.judge}. {row.judge_reason}".rstrip())
        elif row.judge_reason:
            out.append(f"Judge: {row.judge_reason}")
    if report.errors:
        out += ["", "=" * 72, "Errors:", *(f"  {e}" for e in report.errors)]
    return "\n".join(out) + "\n"
