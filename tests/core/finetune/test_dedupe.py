"""The blocked float32 near-duplicate search gives what the exact all-pairs scan gives.

Vectors are random with near duplicates planted at known cosines on both sides of the
threshold, and the row blocks are made small so that pairs cross many blocks and the
diagonal blocks, where the lower triangle must be left out, come up often.
"""

from __future__ import annotations

import numpy as np
import pytest

from core.finetune.dedupe import (
    _exact_groups,
    _similar_pairs_numpy,
    _similar_pairs_python,
    near_duplicates,
)


def exact_pairs(vectors: np.ndarray, threshold: float) -> list[tuple[int, int, float]]:
    """Every pair by one float64 matrix product: the method the blocked search replaces."""
    m = np.asarray(vectors, dtype=np.float64)
    norms = np.sqrt((m * m).sum(axis=1))
    units = np.divide(m, norms[:, None], out=np.zeros_like(m), where=norms[:, None] > 0)
    scores = units @ units.T
    rows, cols = np.nonzero(np.triu(scores >= threshold, k=1))
    usable = norms > 0
    return [
        (i, j, scores[i, j])
        for i, j in zip(rows.tolist(), cols.tolist(), strict=True)
        if usable[i] and usable[j]
    ]


def with_planted(n: int, dims: int, cosines: list[float], seed: int = 7) -> tuple[np.ndarray, dict]:
    """`n` random unit vectors; for each cosine, one vector replaced by a copy of another
    turned to exactly that cosine. Returns the vectors and {(i, j): cosine}."""
    rng = np.random.default_rng(seed)
    m = rng.standard_normal((n, dims))
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    picks = rng.choice(n, size=2 * len(cosines), replace=False)
    planted = {}
    for k, cosine in enumerate(cosines):
        src, dst = int(picks[2 * k]), int(picks[2 * k + 1])
        other = rng.standard_normal(dims)
        other -= other @ m[src] * m[src]
        other /= np.linalg.norm(other)
        m[dst] = cosine * m[src] + np.sqrt(1 - cosine**2) * other
        planted[(min(src, dst), max(src, dst))] = cosine
    return m, planted


def examples(n: int) -> list[dict]:
    return [{"messages": [{"role": "user", "content": f"question {i}"}]} for i in range(n)]


def test_blocked_search_equals_exact_all_pairs_on_random_vectors():
    # 48 dimensions: random pairs reach 0.6 or so, planted ones straddle 0.95
    cosines = [0.999, 0.98, 0.96, 0.9505, 0.9495, 0.94, 0.9]
    vectors, planted = with_planted(3000, 48, cosines)
    for threshold in (0.95, 0.6):
        expected = exact_pairs(vectors, threshold)
        found = _similar_pairs_numpy(vectors, threshold, block=97)
        assert [(i, j) for i, j, _ in found] != []
        assert sorted((i, j) for i, j, _ in found) == sorted((i, j) for i, j, _ in expected)
        by_pair = {(i, j): s for i, j, s in expected}
        assert all(s == pytest.approx(by_pair[(i, j)], abs=1e-12) for i, j, s in found)
    high = {pair for pair, cosine in planted.items() if cosine >= 0.95}
    assert {(i, j) for i, j, _ in near_duplicates(examples(3000), vectors, 0.95)} == high


def test_planted_near_duplicates_found_among_float32_embeddings():
    # the screening path: 1,536 float32 dimensions, as text-embedding-3-small returns them
    cosines = [0.9999, 0.99, 0.97, 0.951, 0.95005, 0.9499, 0.93, 0.8] * 4
    # and pairs within float32 rounding of the threshold, which only the recheck decides
    cosines += [0.95 + k * 1e-8 for k in range(-30, 31, 2)]
    vectors, planted = with_planted(2500, 1536, cosines, seed=11)
    stored = vectors.astype(np.float32)
    pairs = near_duplicates(examples(2500), stored, 0.95)
    found = {(i, j): s for i, j, s in pairs}
    expected = {(i, j): s for i, j, s in exact_pairs(stored, 0.95)}
    assert set(found) == set(expected)
    assert all(s == pytest.approx(expected[pair], abs=1e-12) for pair, s in found.items())
    clear = {pair for pair, cosine in planted.items() if cosine >= 0.95 + 1e-5}
    assert clear <= set(found) and not any(planted.get(pair, 1) < 0.95 - 1e-5 for pair in found)
    assert [s for *_, s in pairs] == sorted((s for *_, s in pairs), reverse=True)


def test_blocked_search_agrees_with_the_python_scan_and_takes_lists():
    vectors, _ = with_planted(150, 12, [0.99, 0.97, 0.951, 0.949])
    vectors[5] = 0.0  # zero vectors never match
    vectors[9] = vectors[3] * 4.0  # length doesn't matter
    as_lists = vectors.tolist()
    reference = _similar_pairs_python(as_lists, 0.95)
    found = _similar_pairs_numpy(as_lists, 0.95, block=16)
    assert sorted((i, j) for i, j, _ in found) == sorted((i, j) for i, j, _ in reference)
    by_pair = {(i, j): s for i, j, s in reference}
    assert all(s == pytest.approx(by_pair[(i, j)], abs=1e-12) for i, j, s in found)
    assert not any(5 in (i, j) for i, j, _ in found) and any((i, j) == (3, 9) for i, j, _ in found)
    nan = [[float("nan"), 1.0], [1.0, 0.0], [1.0, 0.0]]
    assert [(i, j) for i, j, _ in near_duplicates(examples(3), nan)] == [(1, 2)]


def test_limit_keeps_the_most_alike_pairs_without_exact_duplicates():
    # a templated dataset: every pair alike, so the full list would be n²/2 long
    rng = np.random.default_rng(3)
    base = rng.standard_normal(64)
    vectors = base + rng.standard_normal((600, 64)) * np.linspace(0.01, 0.05, 600)[:, None]
    data = examples(600)
    for i in range(0, 40, 2):  # exact duplicates embed identically and would fill the top
        data[i + 1] = data[i]
        vectors[i + 1] = vectors[i]
    everything = near_duplicates(data, vectors, 0.95)
    assert len(everything) > 150_000
    assert not any(data[i] == data[j] for i, j, _ in everything)
    top = near_duplicates(data, vectors, 0.95, limit=50)
    assert top == everything[:50]
    # small blocks: the cut is made again and again as blocks come in
    blocked = _similar_pairs_numpy(vectors, 0.95, same=_exact_groups(data), limit=50, block=32)
    assert sorted(blocked, key=lambda p: (-p[2], p[0], p[1])) == everything[:50]
    assert near_duplicates(data, vectors, 0.95, skip_exact=False, limit=20)[0][2] == pytest.approx(1.0)
    with pytest.raises(ValueError):
        near_duplicates(data, vectors, 0.95, limit=0)
