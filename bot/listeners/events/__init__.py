"""Event listeners: mentions, messages in DMs and in the bot's threads, the assistant pane."""

from __future__ import annotations

from functools import partial

from slack_bolt.async_app import AsyncApp

from bot.deps import BotDeps
from bot.listeners.events.app_mention import handle_app_mention
from bot.listeners.events.assistant import (
    handle_assistant_thread_context_changed,
    handle_assistant_thread_started,
)
from bot.listeners.events.message import handle_message
from bot.listeners.events.reaction import handle_reaction_added
from bot.listeners.events.uninstall import handle_app_uninstalled, handle_tokens_revoked


def register(app: AsyncApp, deps: BotDeps) -> None:
    app.event("app_mention")(partial(handle_app_mention, deps=deps))
    app.event("message")(partial(handle_message, deps=deps))
    app.event("reaction_added")(partial(handle_reaction_added, deps=deps))
    app.event("assistant_thread_started")(partial(handle_assistant_thread_started, deps=deps))
    app.event("assistant_thread_context_changed")(partial(handle_assistant_thread_context_changed, deps=deps))
    app.event("app_uninstalled")(partial(handle_app_uninstalled, deps=deps))
    app.event("tokens_revoked")(partial(handle_tokens_revoked, deps=deps))
