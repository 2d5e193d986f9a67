"""Checks that need the OpenAI API: moderation and embedding-based near duplicates.

OpenAI runs safety checks on training data and can refuse a job over flagged content;
running a moderation screen first shows which lines to look at. The client is injected, so
tests and other OpenAI-compatible servers work the same way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from core.finetune.budget import message_text
from core.finetune.dedupe import example_text, near_duplicates
from core.finetune.report import Problem
from core.tokens import encoding

T = TypeVar("T")
R = TypeVar("R")

SCREENED_ROLES = ("user", "assistant")
# Embedding models take at most 8,192 tokens per input (cl100k_base) and 300,000 per request.
EMBEDDING_ENCODING = "cl100k_base"
MAX_EMBEDDING_INPUT_TOKENS = 8_000
MAX_EMBEDDING_REQUEST_TOKENS = 250_000


async def _bounded(calls: Sequence[Callable[[], Awaitable[R]]], concurrency: int) -> list[R]:
    """Run calls concurrently, at most `concurrency` at a time, results in call order."""
    gate = asyncio.Semaphore(max(1, concurrency))

    async def run(call: Callable[[], Awaitable[R]]) -> R:
        async with gate:
            return await call()

    return list(await asyncio.gather(*(run(c) for c in calls)))


def _chunks(items: list[T], size: int) -> list[list[T]]:
    return [items[i : i + size] for i in range(0, len(items), max(1, size))]


def _flagged_categories(result: Any) -> list[str]:
    categories = getattr(result, "categories", None)
    if categories is None:
        return []
    data = categories.model_dump(by_alias=True) if hasattr(categories, "model_dump") else dict(categories)
    return sorted(name for name, on in data.items() if on is True)


async def moderation_screen(
    client: Any,
    examples: list[tuple[int, dict]],
    *,
    model: str = "omni-moderation-latest",
    batch: int = 32,
    concurrency: int = 4,
    file: str = "train",
) -> list[Problem]:
    """One error per line whose user or assistant content the moderation model flags.

    Each message is screened on its own, so the problem can name the message and the
    categories; messages go `batch` to a call.
    """
    items: list[tuple[int, int, str, str]] = []
    for line, example in examples:
        for index, message in enumerate(example.get("messages") or [], start=1):
            if isinstance(message, dict) and message.get("role") in SCREENED_ROLES:
                text = message_text(message)
                if text.strip():
                    items.append((line, index, message["role"], text))
    batches = _chunks(items, batch)

    def call(chunk: list[tuple[int, int, str, str]]) -> Callable[[], Awaitable[Any]]:
        return lambda: client.moderations.create(model=model, input=[text for *_, text in chunk])

    responses = await _bounded([call(c) for c in batches], concurrency)
    flagged: dict[int, list[str]] = {}
    for chunk, response in zip(batches, responses, strict=True):
        if len(response.results) != len(chunk):
            raise ValueError(f"moderation returned {len(response.results)} results for {len(chunk)} inputs")
        for (line, index, role, _), result in zip(chunk, response.results, strict=True):
            if result.flagged:
                categories = ", ".join(_flagged_categories(result)) or "flagged"
                flagged.setdefault(line, []).append(f"message {index} ({role}): {categories}")
    return [
        Problem(line, "error", "moderation_flagged", "flagged by moderation: " + "; ".join(found), file)
        for line, found in sorted(flagged.items())
    ]


def _embedding_batches(texts: list[str], batch: int) -> list[list[str]]:
    """Truncate each text to the model's input limit and pack requests under the token cap."""
    enc = encoding(EMBEDDING_ENCODING)
    batches: list[list[str]] = []
    current: list[str] = []
    current_tokens = 0
    for text in texts:
        ids = enc.encode(text, disallowed_special=())
        if len(ids) > MAX_EMBEDDING_INPUT_TOKENS:
            ids = ids[:MAX_EMBEDDING_INPUT_TOKENS]
            text = enc.decode(ids)
        if current and (len(current) >= batch or current_tokens + len(ids) > MAX_EMBEDDING_REQUEST_TOKENS):
            batches.append(current)
            current, current_tokens = [], 0
        current.append(text)
        current_tokens += len(ids)
    if current:
        batches.append(current)
    return batches


async def embed_texts(
    client: Any,
    texts: list[str],
    *,
    model: str = "text-embedding-3-small",
    batch: int = 128,
    concurrency: int = 4,
) -> list[list[float]]:
    """Embeddings for `texts`, in order, however the server orders its response."""

    def call(chunk: list[str]) -> Callable[[], Awaitable[Any]]:
        return lambda: client.embeddings.create(model=model, input=chunk)

    batches = _embedding_batches(texts, batch)
    responses = await _bounded([call(c) for c in batches], concurrency)
    vectors: list[list[float]] = []
    for chunk, response in zip(batches, responses, strict=True):
        data = sorted(response.data, key=lambda d: d.index)
        if len(data) != len(chunk):
            raise ValueError(f"embeddings returned {len(data)} vectors for {len(chunk)} inputs")
        vectors += [list(d.embedding) for d in data]
    return vectors


async def find_near_duplicates(
    client: Any,
    examples: list[tuple[int, dict]],
    *,
    model: str = "text-embedding-3-small",
    threshold: float = 0.95,
    batch: int = 128,
    file: str = "train",
) -> list[Problem]:
    """One warning per pair of lines whose conversations embed nearly alike.

    Exact duplicates are left to `validate_dataset`; examples with no conversation text
    are skipped (the API rejects empty input).
    """
    kept = [(line, example, text) for line, example in examples if (text := example_text(example)).strip()]
    if len(kept) < 2:
        return []
    vectors = await embed_texts(client, [text for *_, text in kept], model=model, batch=batch)
    pairs = near_duplicates([example for _, example, _ in kept], vectors, threshold)
    problems = []
    for i, j, similarity in pairs:
        first, second = kept[i][0], kept[j][0]
        message = f"nearly the same as line {first} (cosine {similarity:.3f})"
        problems.append(Problem(second, "warning", "near_duplicate", message, file))
    return sorted(problems, key=lambda p: p.line)
