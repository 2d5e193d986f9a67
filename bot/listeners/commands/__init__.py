"""Slash commands: /persona and /ask-json (fine-tuning adds /finetune)."""

from __future__ import annotations

from functools import partial

from slack_bolt.async_app import AsyncApp

from bot.deps import BotDeps
from bot.listeners.commands.ask_json import handle_ask_json
from bot.listeners.commands.finetune import handle_finetune
from bot.listeners.commands.persona import handle_persona


def register(app: AsyncApp, deps: BotDeps) -> None:
    app.command("/persona")(partial(handle_persona, deps=deps))
    app.command("/ask-json")(partial(handle_ask_json, deps=deps))
    app.command("/finetune")(partial(handle_finetune, deps=deps))
