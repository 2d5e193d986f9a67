"""Checking a chat fine-tuning dataset before it is uploaded: offline, pure and synchronous.

OpenAI validates a file only after upload and queueing, and reports the first few
problems without line numbers; catching them here saves a round trip per mistake. The
checks follow the OpenAI cookbook's "Chat fine-tuning data prep" notebook and add what
it misses: developer and tool roles, weights, tool calls, line numbers, duplicates,
train/validation overlap and per-model token limits.

This module holds the orchestration; the pieces live in small modules and are
re-exported here so callers need one import.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from core.finetune.budget import (
    PRICES_PER_1M_TRAINING_TOKENS,
    billed_tokens,
    example_tokens,
    price_per_1m,
    recommend_epochs,
    token_counter,
    token_limit,
)
from core.finetune.dedupe import exact_duplicates, example_text, fingerprint, near_duplicates
from core.finetune.jsonl import parse_jsonl
from core.finetune.render import format_report, line_ranges, report_to_dict
from core.finetune.report import Distribution, Problem, Report, describe
from core.finetune.schema import check_example
from core.finetune.split import split_dataset
from core.tokens import model_info

__all__ = [
    "PRICES_PER_1M_TRAINING_TOKENS",
    "Distribution",
    "Problem",
    "Report",
    "example_text",
    "format_report",
    "near_duplicates",
    "parse_jsonl",
    "recommend_epochs",
    "report_to_dict",
    "split_dataset",
    "validate_and_collect",
    "validate_dataset",
    "valid_examples",
]

DEFAULT_MODEL = "gpt-4.1-mini-2025-04-14"
RECOMMENDED_EXAMPLES = 50
# OpenAI's upload limit for a fine-tuning file.
MAX_FILE_BYTES = 512 * 1024 * 1024


@dataclass
class _FileCheck:
    """One file's per-line results, before dataset-wide checks are added."""

    n_lines: int = 0
    n_examples: int = 0
    problems: list[Problem] = field(default_factory=list)
    valid: list[tuple[int, dict]] = field(default_factory=list)
    # (line, messages, total tokens, assistant tokens) for each valid example
    counts: list[tuple[int, int, int, int]] = field(default_factory=list)
    duplicates: list[list[int]] = field(default_factory=list)


def _check_file(text: str, model: str, limit: int, file: str, count: Callable[[str], int]) -> _FileCheck:
    result = _FileCheck()
    if len(text) > MAX_FILE_BYTES // 4 and len(text.encode()) > MAX_FILE_BYTES:
        result.problems.append(
            Problem(
                line=0,
                severity="error",
                code="file_too_large",
                message="file is over OpenAI's 512 MB limit",
                file=file,
            )
        )
    records, parse_problems = parse_jsonl(text, file=file)
    result.problems += parse_problems
    result.n_examples = len(records)
    result.n_lines = len(records) + sum(p.code == "invalid_json" for p in result.problems)
    for line, example in records:
        found = check_example(example, line, file)
        result.problems += found
        if any(p.severity == "error" for p in found):
            continue
        result.valid.append((line, example))
        total, assistant = example_tokens(example, model, count)
        result.counts.append((line, len(example["messages"]), total, assistant))
        if total > limit:
            message = (
                f"{total:,} tokens, over the {limit:,}-token limit: it will be truncated "
                "and its last messages not trained"
            )
            result.problems.append(
                Problem(line=line, severity="warning", code="over_limit", message=message, file=file)
            )
    result.duplicates = exact_duplicates(result.valid)
    for group in result.duplicates:
        first = group[0]
        for line in group[1:]:
            result.problems.append(
                Problem(
                    line=line,
                    severity="warning",
                    code="duplicate",
                    message=f"same as line {first}",
                    file=file,
                )
            )
    return result


def _overlap(train: list[tuple[int, dict]], valid: list[tuple[int, dict]]) -> list[tuple[int, int]]:
    """(train line, validation line) pairs holding the same example."""
    in_valid: dict[str, list[int]] = {}
    for line, example in valid:
        in_valid.setdefault(fingerprint(example), []).append(line)
    return [(t, v) for t, example in train for v in in_valid.get(fingerprint(example), [])]


def validate_dataset(
    text: str,
    *,
    model: str = DEFAULT_MODEL,
    epochs: int | None = None,
    validation_text: str | None = None,
    prices: dict[str, float] | None = None,
    min_examples: int = 10,
) -> Report:
    """Check a training JSONL (and optionally its validation JSONL) for `model`.

    Token counts use the base model's own encoding; `epochs` overrides the cookbook's
    recommendation for billing; `prices` overrides the price table. Returns a `Report`
    whose `ok` is False when OpenAI would reject the file. Takes seconds for tens of
    thousands of examples: call it from a worker thread in async code.
    """
    report, _ = validate_and_collect(
        text,
        model=model,
        epochs=epochs,
        validation_text=validation_text,
        prices=prices,
        min_examples=min_examples,
    )
    return report


def validate_and_collect(
    text: str,
    *,
    model: str = DEFAULT_MODEL,
    epochs: int | None = None,
    validation_text: str | None = None,
    prices: dict[str, float] | None = None,
    min_examples: int = 10,
) -> tuple[Report, list[tuple[int, dict]]]:
    """`validate_dataset`, and the training file's (line, example) pairs without errors.

    The same pairs as `valid_examples(text)`, without parsing and checking the file a
    second time (half a second at 20,000 examples) before screening or splitting it.
    """
    if epochs is not None and epochs < 1:
        raise ValueError("epochs must be at least 1")
    limit = token_limit(model)
    count = token_counter(model)
    train = _check_file(text, model, limit, "train", count)
    problems = train.problems
    problems += _size_problems(len(train.valid), train.n_examples, min_examples)
    report = _training_report(train, model, limit, epochs, prices)
    if validation_text is not None:
        valid = _check_file(validation_text, model, limit, "validation", count)
        problems += valid.problems
        report.validation_examples = valid.n_examples
        if not valid.valid:
            problems.append(
                Problem(
                    line=0,
                    severity="error",
                    code="no_validation_examples",
                    message="no usable examples",
                    file="validation",
                )
            )
        report.overlap = _overlap(train.valid, valid.valid)
        problems += _overlap_problems(report.overlap)

    file_order = {"train": 0, "validation": 1}
    report.problems = sorted(problems, key=lambda p: (file_order.get(p.file, 2), p.line))
    return report, train.valid


def _size_problems(n_valid: int, n_examples: int, min_examples: int) -> list[Problem]:
    """Too few usable examples is an error (OpenAI refuses the job); few is a warning.

    Only examples without errors count, and the message says so, because an author who
    sees 60 lines and "too few" would otherwise not know that half of them are broken.
    """
    if n_valid < min_examples:
        skipped = f" ({n_examples - n_valid} lines with errors don't count)" if n_examples > n_valid else ""
        message = (
            f"{n_valid} usable examples{skipped}; fine-tuning needs at least {min_examples}: "
            f"add {min_examples - n_valid} more"
        )
        return [Problem(line=0, severity="error", code="too_few_examples", message=message)]
    if n_valid < RECOMMENDED_EXAMPLES:
        message = f"{n_valid} examples; at least {RECOMMENDED_EXAMPLES} well-crafted examples are recommended"
        return [Problem(line=0, severity="warning", code="few_examples", message=message)]
    return []


def _training_report(
    train: _FileCheck, model: str, limit: int, epochs: int | None, prices: dict[str, float] | None
) -> Report:
    """The statistics, epochs and price of the training file, without its problems.

    Figures cover the valid examples only (`train.counts`): those are what a fixed file
    would train on and be billed for.
    """
    info = model_info(model)
    n_valid = len(train.valid)
    report = Report(
        model=model,
        base_model=info.base,
        encoding=info.encoding,
        token_limit=limit,
        n_lines=train.n_lines,
        n_examples=train.n_examples,
        n_valid=n_valid,
        duplicates=train.duplicates,
    )
    totals = [total for _, _, total, _ in train.counts]
    report.messages = describe([n for _, n, _, _ in train.counts])
    report.total_tokens = describe(totals)
    report.assistant_tokens = describe([a for _, _, _, a in train.counts])
    report.over_limit_lines = [line for line, _, total, _ in train.counts if total > limit]
    report.n_over_limit = len(report.over_limit_lines)
    report.recommended_epochs = recommend_epochs(n_valid)
    report.epochs = epochs if epochs is not None else report.recommended_epochs
    report.billed_tokens = billed_tokens(totals, limit, report.epochs)
    report.price_per_1m = price_per_1m(model, prices)
    if report.price_per_1m is not None:
        report.estimated_cost = report.billed_tokens / 1_000_000 * report.price_per_1m
    return report


def _overlap_problems(overlap: list[tuple[int, int]]) -> list[Problem]:
    """One warning per training line that is also in the validation file, listing where.

    Grouped by training line so that an example repeated many times in the validation
    file gives one warning with a line range, not one per copy.
    """
    by_train_line: dict[int, list[int]] = {}
    for train_line, valid_line in overlap:
        by_train_line.setdefault(train_line, []).append(valid_line)
    problems = []
    for train_line, valid_lines in by_train_line.items():
        where = "line" if len(valid_lines) == 1 else "lines"
        message = (
            f"also in the validation file ({where} {line_ranges(valid_lines)}): "
            "validation loss will look better than it is"
        )
        problems.append(
            Problem(line=train_line, severity="warning", code="train_validation_overlap", message=message)
        )
    return problems


def valid_examples(text: str) -> list[tuple[int, dict]]:
    """(line, example) pairs of the examples without format errors, e.g. to screen them."""
    records, _ = parse_jsonl(text)
    result = []
    for line, example in records:
        if not any(p.severity == "error" for p in check_example(example, line)):
            result.append((line, example))
    return result
