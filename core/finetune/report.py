"""What a dataset check found: problems tied to lines, and what training would cost.

Kept apart from the checks so the CLI, the bot and tests can all read a `Report` without
pulling in token counting or the OpenAI client.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass
class Problem:
    """One finding, tied to a 1-based line so an author can jump straight to it.

    `line` is 0 for findings about the whole file (too few examples, say). `file` says
    which file it came from, because a validation file is checked alongside training.
    """

    line: int
    severity: Severity
    code: str
    message: str
    file: str = "train"


@dataclass
class Distribution:
    """Summary of one per-example quantity, the same figures the cookbook notebook prints."""

    min: float = 0
    max: float = 0
    mean: float = 0.0
    median: float = 0
    p5: float = 0
    p95: float = 0


def _quantile(ordered: list[float], q: float) -> float:
    """Linear interpolation between closest ranks, as numpy's default, so figures match the notebook."""
    pos = (len(ordered) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    value = ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)
    return int(value) if float(value).is_integer() else value


def describe(values: list[int] | list[float]) -> Distribution:
    """The distribution of `values`; all zeros for an empty list, so a report always renders."""
    if not values:
        return Distribution()
    ordered = sorted(values)
    return Distribution(
        min=ordered[0],
        max=ordered[-1],
        mean=sum(ordered) / len(ordered),
        median=_quantile(ordered, 0.5),
        p5=_quantile(ordered, 0.05),
        p95=_quantile(ordered, 0.95),
    )


@dataclass
class Report:
    """Everything `validate_dataset` learned, for people (`format_report`) and machines (JSON).

    Statistics, epochs and billing cover the training examples that have no errors
    (`n_valid`): those are the ones a fixed file would train on.
    """

    model: str
    base_model: str
    encoding: str
    token_limit: int
    n_lines: int = 0
    n_examples: int = 0
    n_valid: int = 0
    problems: list[Problem] = field(default_factory=list)
    messages: Distribution = field(default_factory=Distribution)
    total_tokens: Distribution = field(default_factory=Distribution)
    assistant_tokens: Distribution = field(default_factory=Distribution)
    n_over_limit: int = 0
    over_limit_lines: list[int] = field(default_factory=list)
    recommended_epochs: int = 0
    epochs: int = 0
    billed_tokens: int = 0
    price_per_1m: float | None = None
    estimated_cost: float | None = None
    duplicates: list[list[int]] = field(default_factory=list)
    validation_examples: int | None = None
    overlap: list[tuple[int, int]] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        """True when OpenAI should accept the file; warnings are advice, not blockers."""
        return not self.errors
