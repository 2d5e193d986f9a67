"""The "Summarize thread" message shortcut: a summary, posted in that message's thread.

It is a turn like any other in that thread: the thread is read once if the bot hasn't
seen it (bot/thread_import.py), queued behind anything already being answered there, and
streamed with the thread's persona. The summary goes where the thread is, so nobody sees
more than they could already read; the bot must be in the channel to read it at all.
"""

from __future__ import annotations

import logging

from bot import messages, visibility
from bot.deps import BotDeps
from bot.turns import run_turn
from core.conversations import Incoming

log = logging.getLogger(__name__)

SUMMARIZE_THREAD = "summarize_thread"
REQUEST = "Summarize this thread for someone who missed it: the main points, decisions, and open questions with their owners."


async def handle_summarize_thread(ack, body: dict, respond, deps: BotDeps) -> None:
    await ack()
    deps.tasks.spawn(_summarize(deps, body, respond), name="summarize")


async def _summarize(deps: BotDeps, body: dict, respond) -> None:
    message = body.get("message") or {}
    channel = (body.get("channel") or {}).get("id", "")
    user = (body.get("user") or {}).get("id", "")
    team = (body.get("team") or {}).get("id", "") or deps.team_id
    thread_ts = message.get("thread_ts") or message.get("ts", "")
    if not channel or not thread_ts:
        return
    if not await visibility.bot_is_in(deps, channel):
        await respond(text=messages.SUMMARY_NOT_IN_CHANNEL.format(channel=channel), response_type="ephemeral")
        return
    request_ts = str(body.get("action_ts") or body.get("trigger_id", ""))
    incoming = Incoming(
        team=team,
        channel=channel,
        thread_ts=thread_ts,
        user=user,
        text=REQUEST,
        ts=request_ts,
        event_id=f"shortcut:{body.get('trigger_id', request_ts)}",
    )
    # not an event: nothing was kept before an ack, so the queue indexes it itself
    await run_turn(deps, incoming, joined_thread=not channel.startswith("D"), accepted=False)
