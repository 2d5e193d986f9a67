"""A chat turn as Slack sees it: from an incoming message to a streamed answer.

A message is queued in its thread's Redis queue; whichever process holds the thread's
lease takes the queued turns one by one (core/turn_queue.py), renewing the lease while it
works and handing it over on shutdown. Everything the member sees on failure is decided
here: Redis down, the model failing after retries, a stream cut short. The core records;
this module tells the thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from openai import OpenAIError
from redis.exceptions import RedisError
from slack_sdk.errors import SlackApiError

from bot import blocks, intake, limits, messages
from bot.deps import BotDeps
from bot.streaming import AnswerTakenOver, SlackAnswer, Target
from core import conversations, llm, personas, tokens, turn_queue
from core.conversations import Incoming

log = logging.getLogger(__name__)


async def post_in_thread(deps: BotDeps, channel: str, thread_ts: str, text: str) -> None:
    try:
        await deps.client.chat_postMessage(
            channel=channel, thread_ts=thread_ts, text=text, blocks=blocks.notice(text)
        )
    except SlackApiError as exc:
        log.warning("Could not post to %s: %s", channel, exc.response.get("error"))


async def run_turn(
    deps: BotDeps,
    incoming: Incoming,
    *,
    joined_thread: bool = False,
    files: list[dict] | None = None,
    **fields: object,
) -> None:
    """Queue one message's turn; if that makes this process the thread's lease holder,
    answer the thread's queued turns, in order (core/turn_queue.py).

    `joined_thread`: the bot was mentioned inside an existing thread, whose earlier
    messages it never saw; they are read once, before the turn is queued. `fields` travel
    with the queued turn (`kind="json"` and its schema for `@bot json`).
    """
    if joined_thread and (note := await join_thread(deps, incoming)):
        fields["file_notes"] = [*fields.get("file_notes", []), note]
    if files:
        await _with_files(deps, incoming, files, fields)
    try:
        step = await conversations.queue_turn(deps.core, incoming, owner=deps.instance_id, **fields)
    except RedisError as exc:
        log.error("Redis unavailable while queueing a turn: %s", type(exc).__name__)
        # A follow-up may be in a thread that isn't ours; we can't tell without Redis,
        # so only messages addressed to the bot (mentions, DMs) get the error.
        if not incoming.require_existing:
            await post_in_thread(deps, incoming.channel, incoming.thread_ts, messages.STORE_DOWN)
        await intake.done(deps, incoming.conv_id, incoming.event_id, incoming.ts)
        return
    except OpenAIError as exc:  # moderation failed after retries
        await post_in_thread(
            deps, incoming.channel, incoming.thread_ts, messages.llm_error(llm.error_kind(exc))
        )
        await intake.done(deps, incoming.conv_id, incoming.event_id, incoming.ts)
        return
    except Exception:
        log.exception("Couldn't queue a turn in %s", incoming.channel)
        await post_in_thread(deps, incoming.channel, incoming.thread_ts, messages.TURN_FAILED)
        await intake.done(deps, incoming.conv_id, incoming.event_id, incoming.ts)
        return
    if step.status == "flagged":
        await post_in_thread(deps, incoming.channel, incoming.thread_ts, messages.FLAGGED)
        await intake.done(deps, incoming.conv_id, incoming.event_id, incoming.ts)
    elif step.status in ("duplicate", "foreign"):
        deps.stats.skipped += 1
        log.debug("Skipping %s message %s", step.status, incoming.ts)
    elif step.status == "lead":
        await take_turns(deps, step.opened)


async def _with_files(deps: BotDeps, incoming: Incoming, files: list[dict], fields: dict) -> None:
    """Small text files go into the question; the answer's footer names the rest (why)."""
    from bot.message_files import read_files

    read = await read_files(deps, files)
    left_out = "".join(f"\n[{n}]" for n in read.notes)
    incoming.text = f"{incoming.text}\n\n{read.text}{left_out}".strip()
    fields["file_notes"] = [*fields.get("file_notes", []), *read.notes]
    if read.images:
        fields["images"] = read.images


@dataclass
class Held:
    """A lease this process holds, renewed by `keeper`; losing it cancels `worker`."""

    lease: turn_queue.Lease
    keeper: asyncio.Task | None = None
    worker: asyncio.Task | None = None


def hold(deps: BotDeps, lease: turn_queue.Lease) -> Held:
    """Start renewing a lease at once (an adopted thread may wait for a task slot)."""
    held = Held(lease)
    held.keeper = asyncio.create_task(_keep(deps, held), name=f"lease:{lease.conv_id}")
    deps.leases[lease.conv_id] = lease
    return held


async def take_turns(deps: BotDeps, opened: turn_queue.Opened, held: Held | None = None) -> None:
    """Answer the thread's queued turns while this process holds its lease.

    The lease is renewed in the background; each close opens the next turn, or releases
    the lease when the queue is empty. On shutdown, the turn in hand is finished and the
    rest handed over (see `hand_over`). If the lease is lost (this process stalled past
    it and another took over), the turn in hand stops at once.
    """
    held = held or hold(deps, opened.lease)
    held.worker = asyncio.current_task()
    lease = held.lease
    try:
        while opened is not None:
            step = await _answer(deps, opened)
            opened = step.opened if step is not None and step.status == "next" else None
            if opened is not None and deps.stopping.is_set():
                await turn_queue.hand_over(deps.core.store, lease)  # opened again by whoever adopts
                opened = None
    except RedisError as exc:
        log.error("Redis unavailable between turns of %s: %s", lease.conv_id, type(exc).__name__)
    except asyncio.CancelledError:  # shutdown ran out of time, or the lease was lost
        with contextlib.suppress(RedisError):
            await turn_queue.hand_over(deps.core.store, lease)
        raise
    finally:
        held.keeper.cancel()
        deps.leases.pop(lease.conv_id, None)


async def _keep(deps: BotDeps, held: Held) -> None:
    """Renew the lease a few times per period while its turns run."""
    lease_ms = deps.settings.turn_lease_ms
    while True:
        await asyncio.sleep(lease_ms / 3000)
        try:
            renewed = await turn_queue.renew(deps.core.store, held.lease, lease_ms)
            if renewed < 0:
                log.warning("Lost the turn lease of %s to another process; stopping here", held.lease.conv_id)
                if held.worker is not None:
                    held.worker.cancel()
                return
            if renewed == 0:  # our last close released it (or it ran out: the close will say)
                return
        except RedisError as exc:
            log.warning("Could not renew the turn lease of %s: %s", held.lease.conv_id, type(exc).__name__)


async def _title_pane_thread(deps: BotDeps, incoming: Incoming) -> None:
    """A pane thread is named after its first question (the pane lists threads by title)."""
    try:
        await deps.client.assistant_threads_setTitle(
            channel_id=incoming.channel, thread_ts=incoming.thread_ts, title=blocks.pane_title(incoming.text)
        )
    except SlackApiError as exc:
        log.info("Couldn't title a pane thread: %s", exc.response.get("error"))


async def _still_ours(deps: BotDeps, lease: turn_queue.Lease) -> bool:
    return await turn_queue.renew(deps.core.store, lease, deps.settings.turn_lease_ms) == 1


async def join_thread(deps: BotDeps, incoming: Incoming) -> str:
    """Read a thread the bot was just brought into; a note for the answer's footer when
    part of it was left out."""
    from bot.thread_import import import_thread_once

    try:
        return await import_thread_once(deps, incoming)
    except RedisError:
        return ""  # the turn itself reports Redis being down


async def _answer(deps: BotDeps, opened: turn_queue.Opened) -> turn_queue.Step | None:
    """Answer the open turn and close it, whatever happens: the queue never stalls on it."""
    if opened.tries > turn_queue.MAX_TRIES:
        log.error("Giving up on a turn in %s after %d tries", opened.lease.conv_id, opened.tries - 1)
        with contextlib.suppress(Exception):  # even a record we can't read is given up
            incoming = conversations.incoming_of(opened)
            await post_in_thread(deps, incoming.channel, incoming.thread_ts, messages.GAVE_UP)
        return await conversations.skip(deps.core, opened)
    try:
        incoming = conversations.incoming_of(opened)
        # Checked on every try: a retry after a crash may count a turn twice against its
        # person's hourly cap, but a Redis error during the check can't let it skip it.
        if await limits.refused(deps, incoming):
            return await conversations.skip(deps.core, opened)
        if opened.record.get("kind") == "json":
            from bot.json_answers import answer_queued

            await answer_queued(deps, opened)
        else:
            await _answer_chat(deps, opened)
    except SlackApiError as exc:
        log.warning("Slack refused the answer in %s: %s", incoming.channel, exc.response.get("error"))
    except AnswerTakenOver:
        log.warning("Another process took over %s; leaving the answer to it", opened.lease.conv_id)
        return None
    except RedisError as exc:
        log.error("Redis unavailable during a turn: %s", type(exc).__name__)
        await post_in_thread(deps, incoming.channel, incoming.thread_ts, messages.STORE_DOWN_WILL_RETRY)
        return None  # the lease runs out and a recovery scan tries the turn again
    except Exception:
        log.exception("A turn failed in %s", opened.lease.conv_id)
        with contextlib.suppress(Exception):
            await post_in_thread(deps, incoming.channel, incoming.thread_ts, messages.TURN_FAILED)
    return opened.done or await conversations.skip(deps.core, opened)


async def _answer_chat(deps: BotDeps, opened: turn_queue.Opened) -> None:
    core = deps.core
    turn = await conversations.prepare_opened(core, opened)
    incoming = turn.incoming
    deps.stats.turns += 1
    answer = SlackAnswer(
        deps.client,
        Target(
            incoming.channel,
            incoming.thread_ts,
            incoming.team,
            incoming.user,
            pane=bool(opened.meta.get("pane")),
        ),
        rates=deps.rates,
        reuse_ts=opened.shown,
        on_first_message=lambda ts: turn_queue.mark_shown(core.store, opened, ts),
        still_ours=lambda: _still_ours(deps, opened.lease),
    )
    await answer.start()
    if opened.meta.get("pane") and turn.first_reply:
        await _title_pane_thread(deps, incoming)
    await _show_images(deps, turn)
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
            try:
                await answer.fail(messages.llm_error(kind))
            finally:
                await _record(deps, turn, result, answer)
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


async def _show_images(deps: BotDeps, turn: conversations.Prepared) -> None:
    """A question's images go to a model that can see, in this request only (the history
    keeps `[image name]`); otherwise the answer's footer says they were skipped."""
    from bot.message_files import fetch_images

    images = turn.opened.record.get("images") if turn.opened else None
    if not images:
        return
    notes = turn.opened.record.setdefault("file_notes", [])
    if not tokens.model_info(turn.model).vision:
        notes += [
            f"skipped `{blocks.escape(str(i.get('name')))}`: `{turn.model}` can't see images" for i in images
        ]
        return
    fetched, failed = await fetch_images(deps, images)
    notes += failed
    conversations.attach_images(turn, fetched)


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
    notes: tuple[str, ...] = tuple(turn.opened.record.get("file_notes") or ()) if turn.opened else ()
    if resolved and resolved.missing:
        notes += (f"persona `{resolved.missing}` no longer exists",)
    footer = blocks.answer_footer(persona=persona, model=turn.model, notes=notes)
    footer.append(blocks.feedback_buttons(incoming.thread_ts))
    if turn.first_reply and resolved:
        names = list(personas.BUILTINS) + [n for n in resolved.custom_names if n not in personas.BUILTINS]
        footer.append(blocks.persona_select(names, current=resolved.choice.name))
    return footer
