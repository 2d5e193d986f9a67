"""Route a message addressed to the bot: a text command, or a chat turn."""

from __future__ import annotations

from bot import intake, mentions, messages
from bot.deps import BotDeps
from bot.json_answers import answer_in_thread
from bot.thread_persona import switch_thread_persona
from bot.turns import post_in_thread, run_turn
from core import history, schemas
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
    files: list[dict] | None = None,
) -> None:
    """Spawn the work and return at once: Bolt has already acked, nothing waits on us."""
    text = mentions.strip_mention(text, deps.bot_user_id)
    command = mentions.parse_command(text) if addressed else None
    conv_id = history.conversation_id(team, channel, thread_ts)
    if command and command.name == "reset":
        deps.tasks.spawn(
            _handled(deps, conv_id, event_id, ts, _reset(deps, team, channel, thread_ts, event_id or ts))
        )
        return
    if command and command.name in ("help", "persona"):
        name, _, domain = command.args.partition(" ")
        if command.name == "help" or not name:
            work = post_in_thread(deps, channel, thread_ts, messages.THREAD_HELP)
        else:
            work = switch_thread_persona(
                deps,
                team=team,
                channel=channel,
                thread_ts=thread_ts,
                user=user,
                name=name.lower(),
                domain=domain.strip(),
            )
        deps.tasks.spawn(_handled(deps, conv_id, event_id, ts, _once(deps, conv_id, event_id or ts, work)))
        return
    # mentioned inside someone else's thread: read what was said before, once
    joined = addressed and thread_ts != ts and not channel.startswith("D")
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
    if command and command.name == "json":
        schema_arg, question = schemas.split_schema_arg(command.args)
        if not schema_arg:
            work = post_in_thread(deps, channel, thread_ts, messages.THREAD_HELP)
            deps.tasks.spawn(_handled(deps, conv_id, event_id, ts, work))
            return
        deps.tasks.spawn(answer_in_thread(deps, incoming, schema_arg, question, joined))
        return
    deps.tasks.spawn(run_turn(deps, incoming, joined_thread=joined, files=files), name=f"turn:{channel}:{ts}")


async def _handled(deps: BotDeps, conv_id: str, event_id: str, ts: str, work) -> None:
    """A thread command: once it ran, its event leaves the inbox (bot/intake.py)."""
    try:
        await work
    finally:
        await intake.done(deps, conv_id, event_id, ts)


async def _once(deps: BotDeps, conv_id: str, marker: str, work) -> None:
    """Run a thread command once, even when Slack retries its event."""
    try:
        fresh = await history.claim(deps.core.store, conv_id, f"event:{marker}")
    except Exception:
        fresh = True  # Redis down: the command itself reports it
    if fresh:
        await work
    else:
        work.close()


async def _reset(deps: BotDeps, team: str, channel: str, thread_ts: str, marker: str) -> None:
    conv_id = history.conversation_id(team, channel, thread_ts)
    try:
        if not await history.claim(deps.core.store, conv_id, f"event:{marker}"):
            return
        await history.reset(deps.core.store, conv_id, ttl=deps.settings.conversation_ttl_seconds)
    except Exception:
        await post_in_thread(deps, channel, thread_ts, messages.STORE_DOWN)
        return
    await post_in_thread(deps, channel, thread_ts, messages.RESET_DONE)
