"""App Home: the Home tab (published per user) and its buttons and modals."""

from __future__ import annotations

from functools import partial

from slack_bolt.async_app import AsyncApp

from bot import home_view
from bot.deps import BotDeps
from bot.listeners.home.modals import (
    handle_add_schema,
    handle_add_schema_submission,
    handle_channel_persona_submission,
    handle_create_persona,
    handle_create_persona_submission,
    handle_openai_key_submission,
    handle_set_channel_persona,
    handle_set_openai_key,
)
from bot.listeners.home.publish import handle_app_home_opened


def register(app: AsyncApp, deps: BotDeps) -> None:
    app.event("app_home_opened")(partial(handle_app_home_opened, deps=deps))
    app.action(home_view.SET_CHANNEL_PERSONA)(partial(handle_set_channel_persona, deps=deps))
    app.action(home_view.CREATE_PERSONA)(partial(handle_create_persona, deps=deps))
    app.action(home_view.ADD_SCHEMA)(partial(handle_add_schema, deps=deps))
    app.view(home_view.CHANNEL_PERSONA_MODAL)(partial(handle_channel_persona_submission, deps=deps))
    app.view(home_view.CREATE_PERSONA_MODAL)(partial(handle_create_persona_submission, deps=deps))
    app.view(home_view.ADD_SCHEMA_MODAL)(partial(handle_add_schema_submission, deps=deps))
    app.action(home_view.SET_OPENAI_KEY)(partial(handle_set_openai_key, deps=deps))
    app.view(home_view.OPENAI_KEY_MODAL)(partial(handle_openai_key_submission, deps=deps))
