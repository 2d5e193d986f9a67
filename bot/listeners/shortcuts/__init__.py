"""Shortcuts: actions a user starts from a message's menu."""

from __future__ import annotations

from functools import partial

from slack_bolt.async_app import AsyncApp

from bot.deps import BotDeps
from bot.listeners.shortcuts.ask import (
    ASK_ABOUT_MESSAGE,
    ASK_ANYWHERE,
    ASK_MODAL,
    handle_ask_shortcut,
    handle_ask_submission,
)
from bot.listeners.shortcuts.extract import (
    EXTRACT_JSON,
    EXTRACT_MODAL,
    handle_extract_shortcut,
    handle_extract_submission,
)
from bot.listeners.shortcuts.summarize import SUMMARIZE_THREAD, handle_summarize_thread


def register(app: AsyncApp, deps: BotDeps) -> None:
    app.shortcut(SUMMARIZE_THREAD)(partial(handle_summarize_thread, deps=deps))
    for callback_id in (ASK_ABOUT_MESSAGE, ASK_ANYWHERE):
        app.shortcut(callback_id)(partial(handle_ask_shortcut, deps=deps))
    app.view(ASK_MODAL)(partial(handle_ask_submission, deps=deps))
    app.shortcut(EXTRACT_JSON)(partial(handle_extract_shortcut, deps=deps))
    app.view(EXTRACT_MODAL)(partial(handle_extract_submission, deps=deps))
