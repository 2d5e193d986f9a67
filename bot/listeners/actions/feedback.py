"""👍 / 👎 buttons under answers: ratings that feed fine-tuning datasets."""

from __future__ import annotations

from bot import messages
from bot.blocks import FEEDBACK_GOOD
from bot.commands import button_context
from bot.deps import BotDeps
from bot.errors import reported
from core import feedback, history


async def handle_feedback(ack, body: dict, respond, deps: BotDeps) -> None:
    await ack()
    deps.tasks.spawn(_rate(deps, body, respond))


async def _rate(deps: BotDeps, body: dict, respond) -> None:
    ctx = button_context(deps, body, respond)
    async with reported(ctx.say):
        action = body["actions"][0]
        rated_ts = (body.get("message") or {}).get("ts") or body["container"]["message_ts"]
        rating = feedback.GOOD if action["action_id"] == FEEDBACK_GOOD else feedback.BAD
        conv = history.conversation_id(ctx.team, ctx.channel, action["value"])
        ttl = deps.settings.conversation_ttl_seconds
        await feedback.rate(deps.core.store, ctx.team, conv, rated_ts, rating, ctx.user, ttl=ttl)
        label = "👍" if rating == feedback.GOOD else "👎"
        await ctx.say(messages.FEEDBACK_THANKS.format(rating=label))
