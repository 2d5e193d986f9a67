"""Arguments of `/finetune` subcommands: names, model ids, time spans, #channels."""

from __future__ import annotations

import re
import time

from bot.blocks import escape
from bot.errors import UserError

CHANNEL = re.compile(r"<#([CGD][A-Z0-9]+)(?:\|[^>]*)?>")
_SINCE = re.compile(r"^(\d+)([hdw])$")
DATASET_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")  # gpt-4.1-mini, ft:…:org:suffix:id


def channel_in(words: list[str] | tuple[str, ...]) -> str | None:
    """The first `<#C…|name>` among the words (Slack's escaped form of #channel)."""
    return next((m.group(1) for w in words if (m := CHANNEL.match(w))), None)


def dataset_name(raw: str) -> str:
    name = re.sub(r"[^a-z0-9_.-]+", "-", raw.lower()).strip("-.")[:64] or f"dataset-{int(time.time())}"
    if not DATASET_NAME.match(name):
        raise UserError(f"`{escape(raw[:80])}` isn't a usable dataset name (letters, digits, `-`, `_`, `.`).")
    return name


def model_name(raw: str) -> str:
    if not MODEL_NAME.match(raw):
        raise UserError(f"`{escape(raw[:80])}` isn't a model id (letters, digits, `.`, `-`, `_`, `:`).")
    return raw


def since_time(raw: str) -> float:
    m = _SINCE.match(raw or "30d")
    if not m:
        raise UserError(f"`since={escape(raw[:40])}` should look like `30d`, `12h` or `2w`.")
    n, unit = int(m.group(1)), m.group(2)
    return time.time() - n * {"h": 3600, "d": 86400, "w": 7 * 86400}[unit]
