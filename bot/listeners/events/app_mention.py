"""`@Threadwise ...` in a channel: start or continue the thread's conversation."""

from __future__ import annotations

from bot.deps import BotDeps
from bot.event_filters import is_from_a_person
from bot.listeners.events.thread_commands import dispatch_text


async def handle_app_mention(body: dict, event: dict, deps: BotDeps) -> None:
    if not is_from_a_person(event, deps.bot_user_id):
        return
    dispatch_text(
        deps,
        team=body.get("team_id") or event.get("team", ""),
        channel=event["channel"],
        thread_ts=event.get("thread_ts") or event["ts"],
        user=event["user"],
        text=event.get("text", ""),
        ts=event["ts"],
        event_id=body.get("event_id", ""),
        files=event.get("files") or [],
        addressed=True,
    )
