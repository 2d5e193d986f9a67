"""Interactive components: buttons and menus on the bot's messages."""

from __future__ import annotations

import re
from functools import partial

from slack_bolt.async_app import AsyncApp

from bot.blocks import FEEDBACK_BAD, FEEDBACK_GOOD, PERSONA_SELECT_ACTION
from bot.deps import BotDeps
from bot.finetune.cards import CONFIRMS, DISMISSALS
from bot.listeners.actions.adopt_prompt import handle_adopt_prompt
from bot.listeners.actions.feedback import handle_feedback
from bot.listeners.actions.finetune import handle_finetune_button
from bot.listeners.actions.persona_select import handle_persona_select


def register(app: AsyncApp, deps: BotDeps) -> None:
    app.action(PERSONA_SELECT_ACTION)(partial(handle_persona_select, deps=deps))
    app.action(re.compile(r"^adopt_prompt_\d+$"))(partial(handle_adopt_prompt, deps=deps))
    for action_id in (FEEDBACK_GOOD, FEEDBACK_BAD):
        app.action(action_id)(partial(handle_feedback, deps=deps))
    for action_id in CONFIRMS | DISMISSALS:
        app.action(action_id)(partial(handle_finetune_button, deps=deps))
