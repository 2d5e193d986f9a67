"""Slash commands: each is a registry (bot/commands.py) of subcommands."""

from __future__ import annotations

from functools import partial

from slack_bolt.async_app import AsyncApp

from bot.commands import handle
from bot.deps import BotDeps
from bot.listeners.commands.ask_json import ASK_JSON
from bot.listeners.commands.finetune import FINETUNE
from bot.listeners.commands.persona import PERSONA
from bot.listeners.commands.usage import USAGE


def register(app: AsyncApp, deps: BotDeps) -> None:
    for registry in (PERSONA, ASK_JSON, FINETUNE, USAGE):
        app.command(registry.command)(partial(handle(registry), deps=deps))
