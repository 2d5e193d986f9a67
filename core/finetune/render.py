"""Turning a `Report` into text for dataset authors, or plain data for JSON."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from core.finetune.report import Distribution, Problem, Report

# Per (file, code), show this many problems in full before summarizing the rest as line ranges.
SHOWN_PER_CODE = 10


def report_to_dict(report: Report) -> dict[str, Any]:
    """Plain data for `json.dumps`, including the derived `ok`, error and warning counts."""
    data = asdict(report)
    data["ok"] = report.ok
    data["n_errors"] = len(report.errors)
    data["n_warnings"] = len(report.warnings)
    return data


def line_ranges(lines: list[int]) -> str:
    """`[1, 2, 3, 7, 9, 10]` -> `"1-3, 7, 9-10"`: long line lists stay readable."""
    ordered = sorted(set(lines))
    parts: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ", ".join(parts)


def _where(problem: Problem) -> str:
    prefix = "" if problem.file == "train" else f"{problem.file} "
    return f"{prefix}line {problem.line}" if problem.line else f"whole {problem.file} file"


def _problem_section(title: str, problems: list[Problem]) -> list[str]:
    if not problems:
        return []
    out = [f"{title} ({len(problems)}):"]
    groups: dict[tuple[str, str], list[Problem]] = {}
    for problem in problems:
        groups.setdefault((problem.file, problem.code), []).append(problem)
    for (file, code), group in groups.items():
        label = code if file == "train" else f"{code} in {file}"
        out.append(f"  [{label}] x{len(group)}" if len(group) > 1 else f"  [{label}]")
        for problem in group[:SHOWN_PER_CODE]:
            out.append(f"    {_where(problem)}: {problem.message}")
        rest = [p.line for p in group[SHOWN_PER_CODE:]]
        if rest:
            out.append(f"    ... and {len(rest)} more on lines {line_ranges(rest)}")
    return out


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _number(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:,.1f}"


def _distribution_table(report: Report) -> list[str]:
    rows: list[tuple[str, Distribution]] = [
        ("messages", report.messages),
        ("total tokens", report.total_tokens),
        ("assistant tokens", report.assistant_tokens),
    ]
    columns = ("min", "max", "mean", "median", "p5", "p95")
    out = [f"  {'per example':<18}" + "".join(f"{c:>10}" for c in columns)]
    for name, dist in rows:
        out.append(f"  {name:<18}" + "".join(f"{_number(getattr(dist, c)):>10}" for c in columns))
    return out


def format_report(report: Report) -> str:
    """A plain-text report: verdict first, then what to fix (with line numbers), then the numbers."""
    verdict = "OK" if report.ok else "FAILED"
    summary = (
        f"{verdict}: {_plural(len(report.errors), 'error')}, {_plural(len(report.warnings), 'warning')}; "
        f"{report.n_valid} usable of {report.n_examples} examples on {report.n_lines} lines"
    )
    if report.validation_examples is not None:
        summary += f"; {report.validation_examples} validation examples"
    model = (
        report.model if report.model == report.base_model else f"{report.model} (base {report.base_model})"
    )
    out = [
        summary,
        f"Model {model}: {report.encoding}, {report.token_limit:,} tokens per example",
        "",
    ]
    sections = _problem_section("Errors", report.errors) + _problem_section("Warnings", report.warnings)
    if sections:
        out += [*sections, ""]
    out += ["Distributions:", *_distribution_table(report), ""]
    if report.n_over_limit:
        out.append(
            f"Over the token limit: {report.n_over_limit} examples (lines {line_ranges(report.over_limit_lines)}), "
            "truncated in training"
        )
    else:
        out.append("Over the token limit: none")
    if report.duplicates:
        groups = "; ".join(", ".join(map(str, g)) for g in report.duplicates[:SHOWN_PER_CODE])
        out.append(f"Exact duplicates: {_plural(len(report.duplicates), 'group')} (lines {groups})")
    if report.overlap:
        pairs = ", ".join(f"{t}={v}" for t, v in report.overlap[:SHOWN_PER_CODE])
        out.append(f"Train/validation overlap: {len(report.overlap)} (train=validation lines {pairs})")
    chosen = (
        "recommended"
        if report.epochs == report.recommended_epochs
        else f"recommended {report.recommended_epochs}"
    )
    out.append(f"Epochs: {report.epochs} ({chosen})")
    out.append(
        f"Billed tokens: ~{report.billed_tokens:,} "
        f"(sum of min({report.token_limit:,}, tokens) x {report.epochs} epochs)"
    )
    if report.estimated_cost is not None:
        cost = report.estimated_cost
        shown = f"{cost:,.2f}" if cost >= 1 or cost == 0 else f"{cost:.4f}"
        out.append(f"Estimated cost: ~${shown} at ${report.price_per_1m:,.2f} per 1M training tokens")
    else:
        out.append(f"Estimated cost: unknown (no price for {report.base_model})")
    return "\n".join(out)
