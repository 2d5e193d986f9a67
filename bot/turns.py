"""A chat turn as Slack sees it: from an incoming message to a streamed answer.

Everything the member sees on failure is decided here: Redis down, the model failing
after retries, a stream cut short. The core records; this module tells the thread.
"""

from __future__ import annotations

import logging

from openai import OpenAIError
from redis.exceptions import RedisError
from slack_sdk.errors import SlackApiError

from bot import blocks, messages
from bot.deps import BotDeps
from bot.streaming import SlackAnswer, Target
from core import conversations, llm, personas
from core.conversations import Incoming

log = logging.getLogger(__name__)


async def post_in_thread(deps: BotDeps, channel: str, thread_ts: str, text: str) -> None:
    try:
        await deps.client.chat_postMessage(
            channel=channel, thread_ts=thread_ts, text=text, blocks=blocks.notice(text)
        )
    except SlackApiError as exc:
        log.warning("Could not post to %s: %s", channel, exc.response.get("error"))


async def run_turn(deps: BotDeps, incoming: Incoming, *, joined_thread: bool = False) -> None:
    """Answer one message; turns of one thread run one at a time, in arrival order.

    `joined_thread`: the bot was mentioned inside an existing thread, whose earlier
    messages it never saw; they are read once before the first turn.
    """
    async with deps.core.turn_locks.hold(incoming.conv_id):
        try:
            if joined_thread:
                await join_thread(deps, incoming)
            await _run_turn(deps, incoming)
        except SlackApiError as exc:
            log.warning("Slack refused the answer in %s: %s", incoming.channel, exc.response.get("error"))


async def join_thread(deps: BotDeps, incoming: Incoming) -> None:
    from bot.thread_import import import_thread_once

    try:
        await import_thread_once(deps, incoming)
    except RedisError:
        pass  # the turn itself reports Redis being down


async def _run_turn(deps: BotDeps, incoming: Incoming) -> None:
    core = deps.core
    try:
        turn = await conversations.prepare(core, incoming)
    except RedisError as exc:
        log.error("Redis unavailable while opening a turn: %s", type(exc).__name__)
        # A follow-up may be in a thread that isn't ours; we can't tell without Redis,
        # so only messages addressed to the bot (mentions, DMs) get the error.
        if not incoming.require_existing:
            await post_in_thread(deps, incoming.channel, incoming.thread_ts, messages.STORE_DOWN)
        return
    except OpenAIError as exc:  # moderation failed after retries
        await post_in_thread(
            deps, incoming.channel, incoming.thread_ts, messages.llm_error(llm.error_kind(exc))
        )
        return
    if turn.status in ("duplicate", "foreign"):
        deps.stats.skipped += 1
        log.debug("Skipping %s message %s", turn.status, incoming.ts)
        return
    if turn.status == "flagged":
        await post_in_thread(deps, incoming.channel, incoming.thread_ts, messages.FLAGGED)
        return

    deps.stats.turns += 1
    answer = SlackAnswer(
        deps.client,
        Target(incoming.channel, incoming.thread_ts, incoming.team, incoming.user),
        budget=deps.streams,
    )
    await answer.start()
    result = llm.StreamResult()
    notes: list[str] = []
    if turn.truncated_from:
        limit = conversations.history_budget(deps.settings, turn.model)
        notes.append(messages.TRUNCATED.format(n=turn.truncated_from, limit=limit))
    try:
        async for delta in conversations.reply(core, turn, result):
            await answer.append_model(delta)
    except Exception as exc:
        kind = llm.error_kind(exc)
        log.warning("Model call failed for %s: %s (%s)", incoming.conv_id, type(exc).__name__, kind)
        deps.stats.failed += 1
        if result.text:
            try:
                await answer.finish(_footer(turn, incoming), note=messages.INTERRUPTED)
            finally:
                await _record(deps, turn, result, answer, interrupted=True)
        else:
            await answer.fail(messages.llm_error(kind))
        return
    if result.refusal and not result.text:
        notes.append(f"_The model declined to answer: {blocks.escape(result.refusal)}_")
    if result.finish_reason == "length":
        notes.append(messages.LENGTH_LIMIT)
    try:
        await answer.finish(_footer(turn, incoming), note="\n".join(notes))
    finally:
        await _record(deps, turn, result, answer)
    deps.stats.answered += 1


async def _record(deps: BotDeps, turn, result, answer: SlackAnswer, *, interrupted: bool = False) -> None:
    """Save the answer after it is shown; if Redis fails now, say so in the thread."""
    try:
        await conversations.record(
            deps.core, turn, result, interrupted=interrupted, slack_ts=answer.message_ts
        )
    except RedisError as exc:
        log.error("Redis unavailable while saving an answer: %s", type(exc).__name__)
        await post_in_thread(deps, turn.incoming.channel, turn.incoming.thread_ts, messages.NOT_SAVED)


def _footer(turn: conversations.Prepared, incoming: Incoming) -> list[dict]:
    """Persona and model under every answer; the thread's first answer adds a persona menu."""
    resolved = turn.resolved
    persona = resolved.choice.name if resolved else "default"
    if resolved and resolved.choice.domain:
        persona += f" ({blocks.escape(resolved.choice.domain[: personas.MAX_DOMAIN_CHARS])})"
    notes = ()
    if resolved and resolved.missing:
        notes = (f"persona `{resolved.missing}` no longer exists",)
    footer = blocks.answer_footer(persona=persona, model=turn.model, notes=notes)
    footer.append(blocks.feedback_buttons(incoming.thread_ts))
    if turn.first_reply and resolved:
        names = list(personas.BUILTINS) + [n for n in resolved.custom_names if n not in personas.BUILTINS]
        footer.append(blocks.persona_select(names, current=resolved.choice.name))
    return footer
