"""Events the bot may answer are kept in Redis before Slack is told they arrived.

Slack never redelivers an event once it is acked. So a mention, a DM or a thread reply
goes into its conversation's inbox (core/turn_queue.py `accept`, one round trip) before
the ack: in HTTP mode in `bot/http.py`, in Socket Mode in a Bolt middleware that runs
before Bolt's ack. Queueing the turn takes it out of the inbox. If the process dies in
between, a recovery scan finds the event there (`adopt` returns it) and `replay` runs it
through the same listener here, where the dedupe markers make a replay of an event that
did get queued a no-op.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field

from redis.exceptions import RedisError
from slack_bolt.async_app import AsyncApp

from bot.deps import BotDeps
from bot.event_filters import may_start_turn
from core import history, turn_queue

log = logging.getLogger(__name__)


def event_key(event_id: str, ts: str) -> str:
    """The marker naming an event, in the inbox and among the dedupe markers."""
    return f"event:{event_id or ts}"


def conversation_of(body: dict) -> str:
    event = body["event"]
    team = body.get("team_id") or event.get("team", "")
    return history.conversation_id(team, event["channel"], event.get("thread_ts") or event["ts"])


@dataclass
class Batch:
    """Events accepted in one turn of the event loop: written together, in one pipeline.

    Per process on purpose: it only combines writes, and a burst of 500 events then costs
    a few round trips instead of 500 (and its acks don't wait behind each other's).
    """

    events: list[tuple[str, str, str, str]] = field(default_factory=list)
    written: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    writer: asyncio.Task | None = None


async def accept(deps: BotDeps, body: dict, raw: str) -> None:
    """Keep `body` (an Events API payload) if it may start a turn. Redis being down is
    reported by the turn itself, so it doesn't hold up the ack."""
    event = body.get("event") if body.get("type") == "event_callback" else None
    # The bot's id from the payload: with many workspaces the request isn't authorized yet
    bot_user = ((body.get("authorizations") or [{}])[0] or {}).get("user_id") or deps.bot_user_id
    if not isinstance(event, dict) or not may_start_turn(event, bot_user):
        return
    batch = deps.accepting
    if batch is None:
        batch = deps.accepting = Batch()
        # Runs once this loop turn's other requests have joined the batch; held by it.
        batch.writer = asyncio.create_task(_write(deps, batch))
    ts = event.get("ts", "")
    batch.events.append((conversation_of(body), event_key(body.get("event_id", ""), ts), ts, raw))
    await asyncio.shield(batch.written)


async def _write(deps: BotDeps, batch: Batch) -> None:
    deps.accepting = None  # events from now on start the next batch
    try:
        await turn_queue.accept(deps.core.store, batch.events, lease_ms=deps.settings.turn_lease_ms)
    except RedisError as exc:
        log.warning("Could not keep %d events before acking them: %s", len(batch.events), type(exc).__name__)
    except Exception:  # the acks go out whatever happens here
        log.exception("Could not keep %d events before acking them", len(batch.events))
    finally:
        batch.written.set_result(None)


async def done(deps: BotDeps, conv_id: str, event_id: str, ts: str) -> None:
    """An accepted event that didn't become a queued turn (a thread command) is handled."""
    from bot.recovery import kick

    try:
        await turn_queue.done(deps.core.store, conv_id, event_key(event_id, ts))
        await kick(deps, conv_id)
    except RedisError:
        pass  # a replay of it finds its dedupe marker


async def replay(deps: BotDeps, raw: str) -> None:
    """Run an event whose process died before queueing it, as if it had just arrived."""
    from bot.listeners.events.app_mention import handle_app_mention
    from bot.listeners.events.message import handle_message

    body = json.loads(raw)
    event = body["event"]
    handler = handle_app_mention if event.get("type") == "app_mention" else handle_message
    log.warning("Replaying event %s (its process stopped before queueing it)", body.get("event_id"))
    await handler(body=body, event=event, deps=deps)


def accept_before_ack(app: AsyncApp, deps: BotDeps) -> None:
    """Socket Mode: Bolt acks once its middleware has run; keep the event first."""

    async def keep(body: dict, next) -> None:
        await accept(deps, body, json.dumps(body, separators=(",", ":")))
        await next()

    app.middleware(keep)
