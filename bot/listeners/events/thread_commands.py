"""Route a message addressed to the bot: a text command, or a chat turn."""

from __future__ import annotations

from bot import mentions, messages
from bot.deps import BotDeps
from bot.turns import post_in_thread, run_turn
from core import history, keys
from core.conversations import Incoming


def dispatch_text(
    deps: BotDeps,
    *,
    team: str,
    channel: str,
    thread_ts: str,
    user: str,
    text: str,
    ts: str,
    event_id: str,
    addressed: bool,
) -> None:
    """Spawn the work and return at once: Bolt has already acked, nothing waits on us."""
    text = mentions.strip_mention(text, deps.bot_user_id)
    command = mentions.parse_command(text) if addressed else None
    if command and command.name == "reset":
        deps.tasks.spawn(_reset(deps, team, channel, thread_ts, event_id or ts))
        return
    incoming = Incoming(
        team=team,
        channel=channel,
        thread_ts=thread_ts,
        user=user,
        text=text,
        ts=ts,
        event_id=event_id,
        require_existing=not addressed,
    )
    deps.tasks.spawn(run_turn(deps, incoming), name=f"turn:{channel}:{ts}")


async def _reset(deps: BotDeps, team: str, channel: str, thread_ts: str, marker: str) -> None:
    conv_id = keys.conversation_id(team, channel, thread_ts)
    try:
        if not await history.claim(deps.core.store, conv_id, f"event:{marker}"):
            return
        await history.reset(deps.core.store, conv_id, ttl=deps.settings.conversation_ttl_seconds)
    except Exception:
        await post_in_thread(deps, channel, thread_ts, messages.STORE_DOWN)
        return
    await post_in_thread(deps, channel, thread_ts, messages.RESET_DONE)
