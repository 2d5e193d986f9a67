"""Token counts, per-model limits, epochs and price: what a training run will cost.

Counting uses the base model's real encoding through `core.tokens`, so a `ft:` name is
counted like the model it was trained from and nothing is downloaded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from core.tokens import REPLY_PRIMING, TOKENS_PER_MESSAGE, TOKENS_PER_NAME, encoding_for, model_info

# Fields `core.tokens.count_message` leaves out: our own bookkeeping, never sent.
_BOOKKEEPING_KEYS = frozenset({"tokens", "ts", "user"})
# OpenAI's per-example limit for chat fine-tuning; longer examples are truncated.
DEFAULT_TOKEN_LIMIT = 65_536
# base-model prefix -> tokens per example, where it differs from the default.
TOKEN_LIMITS: dict[str, int] = {"gpt-4.1-nano": 32_768}

# USD per 1M training tokens, keyed by base-model name prefix. Prices change: pass
# `prices=` to override rather than trusting this table for a budget.
PRICES_PER_1M_TRAINING_TOKENS: dict[str, float] = {
    "gpt-4.1-2025-04-14": 25.00,
    "gpt-4.1-mini-2025-04-14": 5.00,
    "gpt-4.1-nano-2025-04-14": 1.50,
    "gpt-4o-2024-08-06": 25.00,
    "gpt-4o-mini-2024-07-18": 3.00,
}

# The cookbook's default-epochs heuristic: aim for 3 passes, but see between 100 and
# 25,000 examples in total, with 1 to 25 epochs.
TARGET_EPOCHS = 3
MIN_TARGET_EXAMPLES = 100
MAX_TARGET_EXAMPLES = 25_000
MIN_DEFAULT_EPOCHS = 1
MAX_DEFAULT_EPOCHS = 25


def _longest_prefix(name: str, keys: Iterable[str]) -> str | None:
    return max((k for k in keys if name == k or name.startswith(k + "-")), key=len, default=None)


def token_limit(model: str) -> int:
    """Tokens per training example for `model` (fine-tuned names use their base's limit)."""
    match = _longest_prefix(model_info(model).base, TOKEN_LIMITS)
    return TOKEN_LIMITS[match] if match else DEFAULT_TOKEN_LIMIT


def price_per_1m(model: str, prices: Mapping[str, float] | None = None) -> float | None:
    """Training price for `model`, or None when the table does not know it.

    Keys are prefixes of base-model names; an undated alias such as `gpt-4.1-mini`
    also finds its single dated snapshot, so authors need not type the date.
    """
    table = PRICES_PER_1M_TRAINING_TOKENS if prices is None else prices
    base = model_info(model).base
    match = max((k for k in table if base.startswith(k)), key=len, default=None)
    if match is None:
        dated = [k for k in table if re.fullmatch(re.escape(base) + r"-\d{4}-\d{2}-\d{2}", k)]
        match = dated[0] if len(dated) == 1 else None
    return table[match] if match is not None else None


def recommend_epochs(n_examples: int) -> int:
    """Default epochs as in the cookbook notebook (floor division, as it does).

    So with 12 examples this gives 100 // 12 = 8, i.e. 96 example passes: slightly
    under 100, exactly what the notebook reports.
    """
    if n_examples <= 0:
        return TARGET_EPOCHS
    epochs = TARGET_EPOCHS
    if n_examples * TARGET_EPOCHS < MIN_TARGET_EXAMPLES:
        epochs = min(MAX_DEFAULT_EPOCHS, MIN_TARGET_EXAMPLES // n_examples)
    elif n_examples * TARGET_EPOCHS > MAX_TARGET_EXAMPLES:
        epochs = max(MIN_DEFAULT_EPOCHS, MAX_TARGET_EXAMPLES // n_examples)
    return epochs


def billed_tokens(example_tokens: Iterable[int], limit: int, epochs: int) -> int:
    """Tokens OpenAI bills: every example is truncated to the limit, then seen `epochs` times."""
    return sum(min(limit, tokens) for tokens in example_tokens) * epochs


def _structured_text(message: dict) -> list[str]:
    """Text that `count_message` skips because it is not a plain string value."""
    texts: list[str] = []
    content = message.get("content")
    if isinstance(content, list):
        texts += [p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)]
    calls = message.get("tool_calls")
    if isinstance(calls, list):
        for call in calls:
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict):
                texts += [v for v in (function.get("name"), function.get("arguments")) if isinstance(v, str)]
    function_call = message.get("function_call")
    if isinstance(function_call, dict):
        texts += [
            v for v in (function_call.get("name"), function_call.get("arguments")) if isinstance(v, str)
        ]
    return texts


def message_text(message: dict) -> str:
    """The readable text of a message's content, whether a string or a list of text parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def token_counter(model: str) -> Callable[[str], int]:
    """Token counts for `model`'s encoding, each distinct string encoded once.

    A dataset repeats its system prompt and role names in every example, and tokenizing
    is most of the cost of validating one; keep a counter for one dataset, not longer,
    as it holds every string it has seen.
    """
    encode = encoding_for(model).encode_ordinary  # what encode(disallowed_special=()) does
    seen: dict[str, int] = {}

    def count(text: str) -> int:
        tokens = seen.get(text)
        if tokens is None:
            tokens = seen[text] = len(encode(text))
        return tokens

    return count


def example_tokens(example: dict, model: str, count: Callable[[str], int] | None = None) -> tuple[int, int]:
    """(total, assistant) tokens of one valid example.

    Total follows the cookbook formula (3 per message, its string values, 1 more for a
    name, 3 to prime the reply) and adds what the cookbook leaves out: text content
    parts, tool calls, and the tool definitions (as compact JSON; OpenAI's exact tool
    rendering is not public, so that part is an estimate). Assistant tokens are what is
    trained: assistant content and tool calls, skipping messages with weight 0. Images
    are not counted. Pass one `token_counter` for a whole dataset to count it faster.
    """
    count = count or token_counter(model)
    total = REPLY_PRIMING
    assistant = 0
    for message in example["messages"]:
        structured = sum(count(text) for text in _structured_text(message))
        # core.tokens.count_message's formula, with the counter
        own = TOKENS_PER_MESSAGE
        for key, value in message.items():
            if key in _BOOKKEEPING_KEYS:
                continue
            if isinstance(value, str):
                own += count(value)
            if key == "name":
                own += TOKENS_PER_NAME
        total += own + structured
        if message.get("role") == "assistant" and message.get("weight", 1) != 0:
            content = message.get("content")
            plain = count(content) if isinstance(content, str) else 0
            assistant += plain + structured
    for key in ("tools", "functions"):
        if example.get(key):
            total += count(_compact_json(example[key]))
    return total, assistant


def _compact_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
