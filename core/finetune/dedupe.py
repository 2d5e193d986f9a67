"""Finding repeated examples, exactly (by fingerprint) or nearly (by embedding similarity).

Repeats overweight one behaviour in training, and a repeat across the training and
validation files makes validation loss look better than it is.
"""

from __future__ import annotations

import hashlib
import json
import math
from operator import mul
from typing import Any

from core.finetune.budget import message_text

# Instructions are usually the same in every example; embedding them would make every
# pair look alike, so near-duplicate search compares the conversation only.
_EMBEDDED_ROLES = ("user", "assistant", "tool")


def _normalize_message(message: Any) -> Any:
    """What makes two messages "the same": whitespace and call ids don't, wording does."""
    if not isinstance(message, dict):
        return message
    normal: dict[str, Any] = {"role": message.get("role"), "content": " ".join(message_text(message).split())}
    if message.get("name") is not None:
        normal["name"] = message["name"]
    calls = message.get("tool_calls")
    if isinstance(calls, list):
        normal["tool_calls"] = [
            _normalize_call(c.get("function") if isinstance(c, dict) else c) for c in calls
        ]
    if message.get("function_call") is not None:
        normal["function_call"] = _normalize_call(message["function_call"])
    return normal


def _normalize_call(function: Any) -> Any:
    if not isinstance(function, dict):
        return function
    arguments = function.get("arguments")
    try:
        arguments = json.loads(arguments) if isinstance(arguments, str) else arguments
    except ValueError:
        pass
    return {"name": function.get("name"), "arguments": arguments}


def fingerprint(example: Any) -> str:
    """A stable digest of an example's normalized messages (sha256, not `hash()`, so it
    is the same in every process whatever PYTHONHASHSEED is)."""
    if isinstance(example, dict) and isinstance(example.get("messages"), list):
        subject: Any = [_normalize_message(m) for m in example["messages"]]
    else:
        subject = example
    canonical = json.dumps(subject, sort_keys=True, ensure_ascii=False, default=repr)
    return hashlib.sha256(canonical.encode()).hexdigest()


def exact_duplicates(records: list[tuple[int, Any]]) -> list[list[int]]:
    """Groups of line numbers whose examples are the same, in order of first appearance."""
    groups: dict[str, list[int]] = {}
    for line, example in records:
        groups.setdefault(fingerprint(example), []).append(line)
    return [lines for lines in groups.values() if len(lines) > 1]


def example_text(example: dict) -> str:
    """The text to embed for near-duplicate search: the conversation without instructions."""
    lines = []
    for message in example.get("messages") or []:
        if not isinstance(message, dict) or message.get("role") not in _EMBEDDED_ROLES:
            continue
        text = message_text(message)
        calls = message.get("tool_calls")
        if isinstance(calls, list):
            for call in calls:
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict):
                    text += f"\n{function.get('name')}({function.get('arguments')})"
        if text.strip():
            lines.append(f"{message['role']}: {text.strip()}")
    return "\n".join(lines)


def _unit(vector: list[float]) -> list[float] | None:
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector] if norm else None


def _similar_pairs_python(vectors: list[list[float]], threshold: float) -> list[tuple[int, int, float]]:
    units = [_unit(v) for v in vectors]
    pairs = []
    for i, a in enumerate(units):
        if a is None:
            continue
        for j in range(i + 1, len(units)):
            b = units[j]
            if b is not None and (similarity := sum(map(mul, a, b))) >= threshold:
                pairs.append((i, j, similarity))
    return pairs


def _similar_pairs_numpy(
    vectors: list[list[float]], threshold: float, block: int = 512
) -> list[tuple[int, int, float]]:
    import numpy as np

    matrix = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(matrix, axis=1)
    usable = norms > 0
    matrix = np.divide(matrix, norms[:, None], out=np.zeros_like(matrix), where=usable[:, None])
    pairs = []
    # Row blocks keep memory at block x n instead of n x n for large datasets.
    for start in range(0, len(matrix), block):
        scores = matrix[start : start + block] @ matrix.T
        rows, cols = np.nonzero(scores >= threshold)
        for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
            i = start + r
            if c > i and usable[i] and usable[c]:
                pairs.append((i, c, float(scores[r, c])))
    return pairs


def near_duplicates(
    examples: list[dict],
    embeddings: list[list[float]],
    threshold: float = 0.95,
    *,
    skip_exact: bool = True,
) -> list[tuple[int, int, float]]:
    """Pairs (i, j, cosine) of list positions, i < j, whose embeddings are at least `threshold` alike.

    The caller obtains the embeddings (of `example_text`), so this stays offline and
    testable. Exact duplicates are skipped by default because `validate_dataset`
    already reports them; zero vectors never match. Uses numpy when present, since a
    pure-Python all-pairs scan is slow past a few hundred examples.
    """
    if len(examples) != len(embeddings):
        raise ValueError(f"{len(examples)} examples but {len(embeddings)} embeddings")
    try:
        pairs = _similar_pairs_numpy(embeddings, threshold) if embeddings else []
    except ImportError:
        pairs = _similar_pairs_python(embeddings, threshold)
    if skip_exact:
        prints = [fingerprint(e) for e in examples]
        pairs = [(i, j, s) for i, j, s in pairs if prints[i] != prints[j]]
    return sorted(((i, j, min(1.0, s)) for i, j, s in pairs), key=lambda p: (-p[2], p[0], p[1]))
