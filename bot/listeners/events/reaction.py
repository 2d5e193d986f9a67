"""👍 / 👎 reactions on the bot's answers count as feedback too."""

from __future__ import annotations

import logging

from slack_sdk.errors import SlackApiError

from bot.deps import BotDeps
from core import feedback, history

log = logging.getLogger(__name__)

GOOD = {"+1", "thumbsup", "white_check_mark", "heavy_check_mark", "star"}
BAD = {"-1", "thumbsdown", "x"}


async def handle_reaction_added(body: dict, event: dict, deps: BotDeps) -> None:
    item = event.get("item") or {}
    reaction = (event.get("reaction") or "").split("::")[0]  # skin tones: "+1::skin-tone-2"
    if item.get("type") != "message" or event.get("item_user") != deps.bot_user_id:
        return
    rating = feedback.GOOD if reaction in GOOD else feedback.BAD if reaction in BAD else None
    if rating is None:
        return
    deps.tasks.spawn(_rate(deps, body.get("team_id", ""), item["channel"], item["ts"], rating, event["user"]))


async def _rate(deps: BotDeps, team: str, channel: str, ts: str, rating: str, user: str) -> None:
    # A reaction names only the message. Our answers' threads are kept in Redis when they
    # are saved; only older answers need one read of the message to tell its thread.
    thread_ts = await feedback.thread_of(deps.core.store, team, channel, ts)
    if thread_ts is None:
        if deps.settings.slack_install_kind == "distributed" and not await deps.rates.history_read(
            team, "conversations.replies"
        ):
            log.info("A rating of an old answer was dropped: Slack's one read a minute is spent")
            return
        try:
            found = await deps.client.conversations_replies(channel=channel, ts=ts, limit=1)
        except SlackApiError as exc:
            log.info("Could not look up a rated message: %s", exc.response.get("error"))
            return
        msgs = found.get("messages") or [{}]
        thread_ts = msgs[0].get("thread_ts") or ts
    conv = history.conversation_id(team, channel, thread_ts)
    await feedback.rate(
        deps.core.store, team, conv, ts, rating, user, ttl=deps.settings.conversation_ttl_seconds
    )
