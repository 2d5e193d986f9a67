"""👍 / 👎 buttons under answers: ratings that feed fine-tuning datasets."""

from __future__ import annotations

from bot import messages
from bot.blocks import FEEDBACK_GOOD
from bot.deps import BotDeps
from bot.replies import ephemeral
from core import feedback, history


async def handle_feedback(ack, body: dict, respond, deps: BotDeps) -> None:
    await ack()
    deps.tasks.spawn(_rate(deps, body, respond))


async def _rate(deps: BotDeps, body: dict, respond) -> None:
    action = body["actions"][0]
    team, user = body["team"]["id"], body["user"]["id"]
    channel = (body.get("channel") or {}).get("id") or body["container"]["channel_id"]
    rated_ts = (body.get("message") or {}).get("ts") or body["container"]["message_ts"]
    rating = feedback.GOOD if action["action_id"] == FEEDBACK_GOOD else feedback.BAD
    conv = history.conversation_id(team, channel, action["value"])
    await feedback.rate(
        deps.core.store, team, conv, rated_ts, rating, user, ttl=deps.settings.conversation_ttl_seconds
    )
    label = "👍" if rating == feedback.GOOD else "👎"
    await ephemeral(
        deps, respond, channel=channel, user=user, text=messages.FEEDBACK_THANKS.format(rating=label)
    )
