"""Listeners by Slack surface; each surface's `register(app, deps)` wires its handlers."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.deps import BotDeps
from bot.listeners import actions, commands, events, home, shortcuts


def register_listeners(app: AsyncApp, deps: BotDeps) -> None:
    events.register(app, deps)
    commands.register(app, deps)
    actions.register(app, deps)
    shortcuts.register(app, deps)
    home.register(app, deps)
