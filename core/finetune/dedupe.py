"""Finding repeated examples, exactly (by fingerprint) or nearly (by embedding similarity).

Repeats overweight one behaviour in training, and a repeat across the training and
validation files makes validation loss look better than it is.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Sequence
from operator import mul
from typing import Any

import numpy as np

from core.finetune.budget import message_text

# Instructions are usually the same in every example; embedding them would make every
# pair look alike, so near-duplicate search compares the conversation only.
_EMBEDDED_ROLES = ("user", "assistant", "tool")
# The all-pairs search multiplies blocks of rows by every later row; a block's score
# matrix is kept near this many floats (64 MB) whatever the dataset's size.
_BLOCK_FLOATS = 16_000_000
# Scores are found in float32 (half the memory, twice the BLAS speed of float64) and
# then recomputed in float64. A float32 dot product of two unit vectors is off by at
# most about d * 2**-24 (1e-4 at 1,536 dimensions), and making them unit vectors adds
# as much again; candidates are taken the larger of this and 4 * d * 2**-24 below the
# threshold, so no pair at or above it is lost before the recheck.
_FLOAT32_SLACK = 1e-3


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
    """The plain all-pairs scan: the reference the fast search is tested against."""
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


def _as_matrix(vectors: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    """The embeddings as one 2-D float array, without copying one that already is."""
    matrix = vectors if isinstance(vectors, np.ndarray) else np.asarray(vectors, dtype=np.float64)
    if matrix.dtype not in (np.float32, np.float64):
        matrix = matrix.astype(np.float64)
    if matrix.ndim != 2:
        raise ValueError(f"embeddings must be a list of equal-length vectors, not shape {matrix.shape}")
    return matrix


def _float32_units(matrix: np.ndarray, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Unit rows in float32 and which rows have a direction at all (zero, NaN and inf rows
    don't; they become zero rows so that they score 0 against everything)."""
    units = np.empty(matrix.shape, dtype=np.float32)
    usable = np.empty(len(matrix), dtype=bool)
    for start in range(0, len(matrix), chunk):
        rows = matrix[start : start + chunk]
        norms = np.sqrt(np.einsum("ij,ij->i", rows, rows, dtype=np.float64))
        ok = np.isfinite(norms) & (norms > 0)
        out = units[start : start + chunk]
        scale = np.where(ok, norms, 1.0).astype(matrix.dtype)[:, None]
        np.divide(rows, scale, out=out, casting="same_kind")
        out[~ok] = 0.0
        usable[start : start + chunk] = ok
    return units, usable


def _exact_cosines(matrix: np.ndarray, rows: np.ndarray, cols: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Cosines of the given pairs in float64 from the original values, as the plain scan has them."""
    out = np.empty(len(rows), dtype=np.float64)
    for start in range(0, len(rows), chunk):
        a = matrix[rows[start : start + chunk]].astype(np.float64)
        b = matrix[cols[start : start + chunk]].astype(np.float64)
        a /= np.sqrt((a * a).sum(axis=1))[:, None]
        b /= np.sqrt((b * b).sum(axis=1))[:, None]
        out[start : start + chunk] = (a * b).sum(axis=1)
    return out


def _top(rows: np.ndarray, cols: np.ndarray, scores: np.ndarray, keep: int) -> tuple[np.ndarray, ...]:
    if len(scores) <= keep:
        return rows, cols, scores
    best = np.argpartition(-scores, keep - 1)[:keep]
    return rows[best], cols[best], scores[best]


def _similar_pairs_numpy(
    vectors: Sequence[Sequence[float]] | np.ndarray,
    threshold: float,
    *,
    same: Callable[[np.ndarray], np.ndarray] | None = None,
    limit: int | None = None,
    block: int | None = None,
) -> list[tuple[int, int, float]]:
    """All pairs i < j at least `threshold` alike, by blocked float32 products and a float64 recheck.

    Only the upper triangle is multiplied (block of rows times the rows from there on),
    so the work is n²/2 dot products, done by BLAS. `same(indices)` gives a group id per
    index; pairs within a group are dropped before `limit` is applied (the exact
    duplicates, which would otherwise fill it). With `limit`, the `limit` most similar
    pairs are kept as the scan goes, so memory stays bounded even when every example is
    like every other; which pairs make that cut is decided on float32 scores.
    """
    matrix = _as_matrix(vectors)
    n, dims = matrix.shape
    if n < 2:
        return []
    units, usable = _float32_units(matrix)
    slack = max(_FLOAT32_SLACK, 4 * dims * 2.0**-24)
    found = _Candidates(np.float32(threshold - slack), limit)
    groups = _LazyGroups(n, same) if same is not None else None
    block = block or max(64, min(2048, _BLOCK_FLOATS // n))
    below = np.tril(np.ones((block, block), dtype=bool))  # the diagonal and pairs seen already
    for start in range(0, n, block):
        stop = min(n, start + block)
        scores, hits = _block_hits(units, usable, start, stop, found.floor, below)
        if not hits.any():
            continue
        if groups is not None:
            hits &= groups.differ(hits, start, stop)
        found.add(scores, hits, start)
    if not found.parts:
        return []
    rows, cols, _ = found.arrays()
    return _recheck(matrix, usable, rows, cols, threshold)


def _block_hits(
    units: np.ndarray, usable: np.ndarray, start: int, stop: int, floor: np.float32, below: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Float32 scores of rows start:stop against every row from `start` on, and which reach `floor`.

    Within the block's own columns the diagonal and the pairs below it are set to -inf:
    they are an example with itself, or a pair (j, i) whose (i, j) is in this block too.
    """
    scores = units[start:stop] @ units[start:].T
    size = stop - start
    scores[:, :size][below[:size, :size]] = -np.inf
    hits = scores >= floor
    if floor <= 0:  # zero vectors score 0: only a threshold this low lets them in
        hits &= usable[start:stop, None] & usable[None, start:]
    return scores, hits


class _LazyGroups:
    """Group ids from `same`, asked for only the indices in some candidate pair, each once.

    Those are usually few, so a large dataset is not fingerprinted all over again; an
    index never asked about is in a group of its own.
    """

    def __init__(self, n: int, same: Callable[[np.ndarray], np.ndarray]) -> None:
        self.same = same
        self.ids = np.full(n, -1, dtype=np.int64)
        self.known = np.zeros(n, dtype=bool)

    def differ(self, hits: np.ndarray, start: int, stop: int) -> np.ndarray:
        """A mask over the block's scores: True where row and column are in different groups."""
        n = len(self.ids)
        wanted = np.unique(
            np.concatenate(
                [start + np.flatnonzero(hits.any(axis=1)), start + np.flatnonzero(hits.any(axis=0))]
            )
        )
        new = wanted[~self.known[wanted]]
        if len(new):
            self.ids[new] = self.same(new)
            self.known[new] = True
        row_groups = np.where(self.known[start:stop], self.ids[start:stop], -1 - np.arange(start, stop))
        col_groups = np.where(self.known[start:], self.ids[start:], -1 - np.arange(start, n))
        return row_groups[:, None] != col_groups[None, :]


class _Candidates:
    """Candidate pairs found so far, as arrays per block: (rows, cols, float32 scores).

    With a `limit`, a block contributes at most `limit` pairs once it has over 4 * limit,
    and when over 4 * limit are held they are cut to the best `limit` and `floor` rises
    to the lowest score kept: later blocks then only yield pairs that could make the
    cut, so memory stays bounded however alike the examples are.
    """

    def __init__(self, floor: np.float32, limit: int | None) -> None:
        self.floor = floor
        self.limit = limit
        self.parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.held = 0

    def add(self, scores: np.ndarray, hits: np.ndarray, start: int) -> None:
        """Keep the block's hits (offset by `start` into dataset indices)."""
        limit = self.limit
        if limit is not None and np.count_nonzero(hits) > 4 * limit:
            flat = np.where(hits, scores, -np.inf).ravel()
            best = np.argpartition(-flat, limit - 1)[:limit]
            r, c = np.divmod(best, scores.shape[1])
        else:
            r, c = np.nonzero(hits)
        self.parts.append((r + start, c + start, scores[r, c]))
        self.held += len(r)
        if limit is not None and self.held > 4 * limit:
            rows, cols, s = _top(*self.arrays(), limit)
            self.parts, self.held = [(rows, cols, s)], len(rows)
            self.floor = max(self.floor, s.min())

    def arrays(self) -> tuple[np.ndarray, ...]:
        """All parts joined: (rows, cols, scores)."""
        return tuple(np.concatenate(part) for part in zip(*self.parts, strict=True))


def _recheck(
    matrix: np.ndarray, usable: np.ndarray, rows: np.ndarray, cols: np.ndarray, threshold: float
) -> list[tuple[int, int, float]]:
    """The candidates whose float64 cosine, from the original values, reaches `threshold`.

    Float32 scores only choose candidates (with slack, so none is lost); the recheck
    makes the result the same as the plain scan's. Rows without a direction never match.
    """
    keep = usable[rows] & usable[cols]
    rows, cols = rows[keep], cols[keep]
    exact = _exact_cosines(matrix, rows, cols)
    keep = exact >= threshold
    return list(zip(rows[keep].tolist(), cols[keep].tolist(), exact[keep].tolist(), strict=True))


def _exact_groups(examples: list[Any]) -> Callable[[np.ndarray], np.ndarray]:
    """Group ids by fingerprint, computed only for the examples asked about: those with a
    candidate pair, usually few, so a large dataset is not fingerprinted all over again."""
    ids: dict[str, int] = {}

    def groups(indices: np.ndarray) -> np.ndarray:
        return np.array(
            [ids.setdefault(fingerprint(examples[i]), len(ids)) for i in indices.tolist()], dtype=np.int64
        )

    return groups


def near_duplicates(
    examples: list[dict],
    embeddings: Sequence[Sequence[float]] | np.ndarray,
    threshold: float = 0.95,
    *,
    skip_exact: bool = True,
    limit: int | None = None,
) -> list[tuple[int, int, float]]:
    """Pairs (i, j, cosine) of list positions, i < j, whose embeddings are at least `threshold` alike.

    The caller obtains the embeddings (of `example_text`), so this stays offline and
    testable; a float32 numpy array (as the API's base64 encoding gives) is used as is.
    Exact duplicates are skipped by default because `validate_dataset` already reports
    them; zero vectors never match. `limit` keeps only the most similar pairs, for
    datasets where nearly every example is like every other and the full list would
    not fit in memory. CPU-bound for seconds at tens of thousands of examples: call it
    from a worker thread in async code.
    """
    if len(examples) != len(embeddings):
        raise ValueError(f"{len(examples)} examples but {len(embeddings)} embeddings")
    if limit is not None and limit < 1:
        raise ValueError("limit must be at least 1")
    same = _exact_groups(examples) if skip_exact else None
    pairs = _similar_pairs_numpy(embeddings, threshold, same=same, limit=limit) if len(embeddings) else []
    pairs.sort(key=lambda p: (-p[2], p[0], p[1]))
    return [(i, j, min(1.0, s)) for i, j, s in pairs[:limit]]
