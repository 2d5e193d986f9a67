"""Checks that need the OpenAI API: moderation and embedding-based near duplicates.

OpenAI runs safety checks on training data and can refuse a job over flagged content;
running a moderation screen first shows which lines to look at. The client is injected, so
tests and other OpenAI-compatible servers work the same way.

The bot runs these for an admin while it serves everyone else from the same event loop,
so everything CPU-bound here runs in worker threads and the loop only waits on the
network: preparing inputs, the pair search, and reading the responses. The SDK's own
response parsing builds a pydantic model per result on the loop; at 20,000 examples
that is over a thousand moderation responses, and it held every member's mention up by
hundreds of milliseconds (bench/admin_load.py). So requests go through the SDK (auth,
errors, retries) but with `with_raw_response`, and their JSON is read in a thread.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import numpy as np

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
# One warning per pair: a dataset made from one template can have nearly every pair
# alike, hundreds of millions of them at 20,000 examples. Past this many only the most
# alike are listed (and memory stays bounded while they are found).
MAX_NEAR_DUPLICATE_PAIRS = 1_000


async def _bounded(calls: Sequence[Callable[[], Awaitable[R]]], concurrency: int) -> list[R]:
    """Run calls concurrently, at most `concurrency` at a time, results in call order."""
    gate = asyncio.Semaphore(max(1, concurrency))

    async def run(call: Callable[[], Awaitable[R]]) -> R:
        async with gate:
            return await call()

    return list(await asyncio.gather(*(run(c) for c in calls)))


def _chunks(items: list[T], size: int) -> list[list[T]]:
    return [items[i : i + size] for i in range(0, len(items), max(1, size))]


def _flags(content: bytes, chunk: list[tuple[int, int, str, str]]) -> list[tuple[int, str]]:
    """(line, what was flagged) for the flagged messages of one moderation response."""
    body = json.loads(content)
    results = body.get("results") if isinstance(body, dict) else None
    if not isinstance(results, list) or len(results) != len(chunk):
        got = len(results) if isinstance(results, list) else "no"
        raise ValueError(f"moderation returned {got} results for {len(chunk)} inputs")
    found = []
    for (line, index, role, _), result in zip(chunk, results, strict=True):
        if isinstance(result, dict) and result.get("flagged"):
            categories = result.get("categories")
            names = (
                sorted(n for n, on in categories.items() if on is True)
                if isinstance(categories, dict)
                else []
            )
            found.append((line, f"message {index} ({role}): {', '.join(names) or 'flagged'}"))
    return found


def _moderation_items(examples: list[tuple[int, dict]]) -> list[tuple[int, int, str, str]]:
    items: list[tuple[int, int, str, str]] = []
    for line, example in examples:
        for index, message in enumerate(example.get("messages") or [], start=1):
            if isinstance(message, dict) and message.get("role") in SCREENED_ROLES:
                text = message_text(message)
                if text.strip():
                    items.append((line, index, message["role"], text))
    return items


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
    items = await asyncio.to_thread(_moderation_items, examples)
    batches = _chunks(items, batch)

    def call(chunk: list[tuple[int, int, str, str]]) -> Callable[[], Awaitable[list[tuple[int, str]]]]:
        async def screen() -> list[tuple[int, str]]:
            raw = await client.moderations.with_raw_response.create(
                model=model, input=[text for *_, text in chunk]
            )
            return await asyncio.to_thread(_flags, raw.content, chunk)

        return screen

    flagged: dict[int, list[str]] = {}
    for found in await _bounded([call(c) for c in batches], concurrency):
        for line, what in found:
            flagged.setdefault(line, []).append(what)
    return [
        Problem(
            line=line,
            severity="error",
            code="moderation_flagged",
            message="flagged by moderation: " + "; ".join(found),
            file=file,
        )
        for line, found in sorted(flagged.items())
    ]


def _embedding_batches(texts: list[str], batch: int) -> list[list[str]]:
    """Truncate each text to the model's input limit and pack requests under the token cap.

    A token is at least one byte of UTF-8, so a text's byte length bounds its tokens:
    only texts longer than the input limit are encoded, which spares tokenizing every
    text of a large dataset just to pack requests.
    """
    enc = None
    batches: list[list[str]] = []
    current: list[str] = []
    current_tokens = 0
    for text in texts:
        tokens = len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
        if tokens > MAX_EMBEDDING_INPUT_TOKENS:
            enc = enc or encoding(EMBEDDING_ENCODING)
            ids = enc.encode_ordinary(text)
            if len(ids) > MAX_EMBEDDING_INPUT_TOKENS:
                ids = ids[:MAX_EMBEDDING_INPUT_TOKENS]
                text = enc.decode(ids)
            tokens = len(ids)
        if current and (len(current) >= batch or current_tokens + tokens > MAX_EMBEDDING_REQUEST_TOKENS):
            batches.append(current)
            current, current_tokens = [], 0
        current.append(text)
        current_tokens += tokens
    if current:
        batches.append(current)
    return batches


def _vectors(content: bytes, expected: int) -> np.ndarray:
    """One response's embeddings as float32 rows in input order, however the server ordered them.

    Asked for as base64 (the API's own float32 bytes), they decode straight into numpy;
    the SDK's default turns them into Python lists, about 30 million floats and a
    gigabyte at 20,000 examples. Servers that ignore the format and send floats work too.
    """
    body = json.loads(content)
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list) or len(data) != expected:
        got = len(data) if isinstance(data, list) else "no"
        raise ValueError(f"embeddings returned {got} vectors for {expected} inputs")
    rows = [
        np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4")
        if isinstance(d["embedding"], str)
        else np.asarray(d["embedding"], dtype=np.float32)
        for d in sorted(data, key=lambda d: d["index"])
    ]
    if len({len(row) for row in rows}) > 1:
        raise ValueError("embeddings of different lengths in one response")
    return np.vstack(rows)


async def embedding_matrix(
    client: Any,
    texts: list[str],
    *,
    model: str = "text-embedding-3-small",
    batch: int = 128,
    concurrency: int = 4,
) -> np.ndarray:
    """Embeddings for `texts` as one float32 matrix, a row per text in order."""
    batches = await asyncio.to_thread(_embedding_batches, texts, batch)

    def call(chunk: list[str]) -> Callable[[], Awaitable[np.ndarray]]:
        async def embed() -> np.ndarray:
            raw = await client.embeddings.with_raw_response.create(
                model=model, input=chunk, encoding_format="base64"
            )
            return await asyncio.to_thread(_vectors, raw.content, len(chunk))

        return embed

    parts = await _bounded([call(c) for c in batches], concurrency)
    return await asyncio.to_thread(np.concatenate, parts)


async def embed_texts(
    client: Any,
    texts: list[str],
    *,
    model: str = "text-embedding-3-small",
    batch: int = 128,
    concurrency: int = 4,
) -> list[list[float]]:
    """Embeddings for `texts`, in order, however the server orders its response."""
    matrix = await embedding_matrix(client, texts, model=model, batch=batch, concurrency=concurrency)
    return await asyncio.to_thread(matrix.tolist)


def _texts_to_embed(examples: list[tuple[int, dict]]) -> tuple[list[int], list[dict], list[str]]:
    """Lines, examples and texts of the examples with conversation text, as three lists
    rather than a tuple each: fewer objects for the garbage collector to walk."""
    lines, kept, texts = [], [], []
    for line, example in examples:
        text = example_text(example)
        if text.strip():
            lines.append(line)
            kept.append(example)
            texts.append(text)
    return lines, kept, texts


async def find_near_duplicates(
    client: Any,
    examples: list[tuple[int, dict]],
    *,
    model: str = "text-embedding-3-small",
    threshold: float = 0.95,
    batch: int = 128,
    file: str = "train",
    max_pairs: int = MAX_NEAR_DUPLICATE_PAIRS,
) -> list[Problem]:
    """One warning per pair of lines whose conversations embed nearly alike.

    Exact duplicates are left to `validate_dataset`; examples with no conversation text
    are skipped (the API rejects empty input). Past `max_pairs` pairs, only the most
    alike are warned about, with one more warning saying so.
    """
    lines, kept, texts = await asyncio.to_thread(_texts_to_embed, examples)
    if len(kept) < 2:
        return []
    vectors = await embedding_matrix(client, texts, model=model, batch=batch)
    pairs = await asyncio.to_thread(near_duplicates, kept, vectors, threshold, limit=max_pairs + 1)
    problems = []
    for i, j, similarity in pairs[:max_pairs]:
        first, second = lines[i], lines[j]
        message = f"nearly the same as line {first} (cosine {similarity:.3f})"
        problems.append(
            Problem(line=second, severity="warning", code="near_duplicate", message=message, file=file)
        )
    if len(pairs) > max_pairs:
        message = (
            f"more than {max_pairs:,} pairs of examples are nearly the same (cosine {threshold} or more); "
            f"only the {max_pairs:,} most alike are listed. Is the dataset one template with small changes?"
        )
        problems.append(
            Problem(line=0, severity="warning", code="many_near_duplicates", message=message, file=file)
        )
    return sorted(problems, key=lambda p: p.line)
