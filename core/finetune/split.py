"""Carving a validation set out of a training set, reproducibly and without leaks."""

from __future__ import annotations

import random
from typing import Any, TypeVar

from core.finetune.dedupe import fingerprint

T = TypeVar("T")


def _subject(item: Any) -> Any:
    """Fingerprint the example itself when items are (line, example) pairs."""
    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], int):
        return item[1]
    return item


def split_dataset(
    examples: list[T], *, validation_fraction: float = 0.1, seed: int = 42
) -> tuple[list[T], list[T]]:
    """Split into (train, validation), both in the original order.

    The same input and seed always give the same split, in any process: the shuffle is
    `random.Random(seed)` over groups in first-appearance order, and nothing depends on
    `hash()`. Identical examples are kept on the same side, so the split itself never
    creates train/validation overlap. With 10 or more examples validation gets at least
    one; training always keeps at least one.
    """
    if not 0 <= validation_fraction < 1:
        raise ValueError("validation_fraction must be in [0, 1)")
    n = len(examples)
    target = round(n * validation_fraction)
    if n >= 10:
        target = max(1, target)
    target = min(target, n - 1)
    if target <= 0:
        return list(examples), []

    groups: dict[str, list[int]] = {}
    for index, item in enumerate(examples):
        groups.setdefault(fingerprint(_subject(item)), []).append(index)
    order = list(groups.values())
    random.Random(seed).shuffle(order)

    chosen: set[int] = set()
    for group in order:
        if len(chosen) + len(group) <= target:
            chosen.update(group)
        if len(chosen) == target:
            break
    if not chosen:
        # Every group is larger than the target: take the smallest one that leaves training non-empty.
        smallest = min(order, key=len)
        if len(smallest) < n:
            chosen.update(smallest)

    train = [item for index, item in enumerate(examples) if index not in chosen]
    valid = [examples[index] for index in sorted(chosen)]
    return train, valid
