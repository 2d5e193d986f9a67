"""Messages: DMs, and follow-ups in threads the bot is part of.

A channel message that mentions the bot also arrives as `app_mention`; it is handled
there only. Top-level channel messages without a mention are none of our business.
"""

from __future__ import annotations

from bot.deps import BotDeps
from bot.event_filters import may_start_turn
from bot.listeners.events.thread_commands import dispatch_text


async def handle_message(body: dict, event: dict, deps: BotDeps) -> None:
    if not may_start_turn(event, deps.bot_user_id):
        return
    text = event.get("text", "")
    is_dm = event.get("channel_type") == "im"
    thread_ts = event.get("thread_ts")
    dispatch_text(
        deps,
        team=body.get("team_id") or event.get("team", ""),
        channel=event["channel"],
        thread_ts=thread_ts or event["ts"],
        user=event["user"],
        text=text,
        ts=event["ts"],
        event_id=body.get("event_id", ""),
        files=event.get("files") or [],
        addressed=is_dm,
    )
