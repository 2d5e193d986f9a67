"""Structured JSON answers, in a channel (`/ask-json`) or over a thread (`@bot json`)."""

from __future__ import annotations

import asyncio
import json
import logging

from redis.exceptions import RedisError
from slack_sdk.errors import SlackApiError

from bot import blocks, intake, limits, messages
from bot.deps import BotDeps
from bot.errors import UserError, reported
from core import conversations, schemas, turn_queue
from core.conversations import Incoming
from core.schemas import NamedSchema, SchemaProblem

log = logging.getLogger(__name__)


async def resolve_schema(deps: BotDeps, team: str, arg: str) -> NamedSchema:
    """A named schema (built-in or the workspace's) or an inline one, checked for strict mode."""
    if arg.lstrip().startswith("{"):
        # The meta-schema check of a 16 KB schema takes a few hundred ms of CPU.
        return await asyncio.to_thread(schemas.prepare_inline, arg)
    found = await schemas.lookup(deps.core.store, team, arg)
    if found is None:
        names = ", ".join(f"`{s.name}`" for s in await schemas.list_all(deps.core.store, team))
        raise SchemaProblem(messages.UNKNOWN_SCHEMA.format(name=arg[:80], names=names))
    return found


def _footer(turn: conversations.Prepared, schema: NamedSchema, answer) -> list[dict]:
    notes = [f"Schema: `{schema.name}`"]
    if schema.notes:
        notes.append(blocks.cut(blocks.escape("normalized for strict mode: " + "; ".join(schema.notes)), 300))
    if answer.mode == "json_object":
        notes.append("server lacks json_schema: used json_object + validation")
    if answer.repaired:
        notes.append("repaired once")
    persona = turn.resolved.choice.name if turn.resolved else "default"
    return blocks.answer_footer(persona=persona, model=turn.model, notes=tuple(notes))


def _request_text(schema: NamedSchema, question: str) -> str:
    return f"Answer as JSON (schema `{schema.name}`): {question}"


async def _render(
    deps: BotDeps,
    *,
    channel: str,
    ts: str,
    thread_ts: str,
    update: bool,
    turn,
    schema,
    answer,
    question,
    user,
) -> None:
    footer = _footer(turn, schema, answer)
    attached = False
    if answer.refusal:
        text = messages.JSON_REFUSED.format(refusal=blocks.escape(answer.refusal[:1000]))
        payload = {"text": text, "blocks": blocks.notice(text) + footer}
    elif not answer.ok:
        text = messages.JSON_INVALID.format(schema=schema.name, error=blocks.escape(answer.error[:500]))
        payload = {"text": text, "blocks": blocks.notice(text) + footer}
    else:
        layout, attached = blocks.json_answer(
            answer.data, question=question, user=user, schema=schema.name, footer=footer
        )
        payload = {
            "text": blocks.fallback_text(json.dumps(answer.data, ensure_ascii=False)),
            "blocks": layout,
        }
    try:
        ts = await _show(deps, channel=channel, ts=ts, thread_ts=thread_ts, update=update, payload=payload)
    except SlackApiError as exc:
        if exc.response.get("error") not in blocks.BLOCKS_REFUSED or not answer.ok:
            raise
        # Slack refused the layout anyway: the question and a pointer stay, the JSON is a file.
        log.warning("Slack refused a JSON answer's blocks (%s); attaching it", exc.response.get("error"))
        note = blocks.asked_line(user=user, schema=schema.name, question=question)
        payload = {
            "text": messages.JSON_ATTACHED,
            "blocks": blocks.notice(note) + blocks.notice(messages.JSON_ATTACHED) + footer,
        }
        ts = await _show(deps, channel=channel, ts=ts, thread_ts=thread_ts, update=update, payload=payload)
        attached = True
    if attached:
        await deps.client.files_upload_v2(
            channel=channel,
            thread_ts=thread_ts,
            filename=f"{schema.name}.json",
            title=f"{schema.name}.json",
            content=json.dumps(answer.data, indent=2, ensure_ascii=False),
        )


async def _show(deps: BotDeps, *, channel: str, ts: str, thread_ts: str, update: bool, payload: dict) -> str:
    if update:
        await deps.client.chat_update(channel=channel, ts=ts, **payload)
        return ts
    response = await deps.client.chat_postMessage(channel=channel, thread_ts=thread_ts, **payload)
    return response["ts"]


async def _run(deps: BotDeps, incoming: Incoming, schema: NamedSchema):
    turn = await conversations.prepare(deps.core, incoming)
    if turn.status != "ok":
        return turn, None
    return turn, await conversations.answer_json(deps.core, turn, schema)


def _not_answered(turn) -> str | None:
    """What to tell the user when a JSON turn didn't reach the model (None: say nothing)."""
    if turn is not None and turn.status == "flagged":
        return messages.FLAGGED
    return None


async def answer_in_channel(
    deps: BotDeps,
    *,
    team: str,
    channel: str,
    user: str,
    schema: NamedSchema,
    question: str,
    request_id: str,
) -> None:
    """Post the question in the channel, answer it there, and make that message a thread."""
    asker = Incoming(team=team, channel=channel, thread_ts="", user=user, text="", ts="")
    if await limits.refused(deps, asker, kept=False):
        return
    head = blocks.asked_line(user=user, schema=schema.name, question=question)
    try:
        placeholder = await deps.client.chat_postMessage(
            channel=channel,
            text=head,
            blocks=[blocks.section(head), *blocks.notice(messages.JSON_THINKING.format(schema=schema.name))],
        )
    except SlackApiError as exc:
        if exc.response.get("error") not in ("not_in_channel", "channel_not_found", "is_archived"):
            raise
        raise UserError(messages.NOT_IN_CHANNEL) from exc
    ts = placeholder["ts"]
    incoming = Incoming(
        team=team,
        channel=channel,
        thread_ts=ts,
        user=user,
        text=_request_text(schema, question),
        ts=ts,
        event_id=request_id,
    )

    async def in_placeholder(text: str) -> None:
        await deps.client.chat_update(channel=channel, ts=ts, text=text, blocks=blocks.notice(text))

    turn = answer = None
    async with reported(in_placeholder, unsaved=True, json=True):
        turn, answer = await _run(deps, incoming, schema)
    if turn is None:
        return
    if answer is None:
        await in_placeholder(_not_answered(turn) or messages.JSON_DUPLICATE)
        return
    await _render(
        deps,
        channel=channel,
        ts=ts,
        thread_ts=ts,
        update=True,
        turn=turn,
        schema=schema,
        answer=answer,
        question=question,
        user=user,
    )
    await _record(deps, turn, answer)


async def _record(deps: BotDeps, turn: conversations.Prepared, answer) -> None:
    """Save the answer once shown; if Redis fails now, say so under it."""
    from bot.turns import post_in_thread

    try:
        await conversations.record_json(deps.core, turn, answer)
    except RedisError as exc:
        log.error("Redis unavailable while saving a JSON answer: %s", type(exc).__name__)
        await post_in_thread(deps, turn.incoming.channel, turn.incoming.thread_ts, messages.NOT_SAVED)


async def answer_in_thread(
    deps: BotDeps, incoming: Incoming, schema_arg: str, question: str, joined: bool, *, accepted: bool = True
) -> None:
    """`@Threadwise json <schema> [question]`: answer over the thread's whole context.

    The schema is checked before the turn is queued, so a typo is answered at once; the
    turn itself waits its place in the thread's queue like any other (`answer_queued`).
    """
    from bot.turns import post_in_thread, run_turn

    async def say(text: str) -> None:
        await post_in_thread(deps, incoming.channel, incoming.thread_ts, text)

    checked = False
    async with reported(say, unsaved=True, json=True):
        schema = await resolve_schema(deps, incoming.team, schema_arg)
        question = question or _default_question(schema)
        incoming.text = _request_text(schema, question)
        checked = True
    if not checked:  # told in the thread; nothing to queue
        await intake.done(deps, incoming.conv_id, incoming.event_id, incoming.ts)
        return
    await run_turn(
        deps,
        incoming,
        joined_thread=joined,
        kind="json",
        schema_arg=schema_arg,
        question=question,
        accepted=accepted,  # an event kept before its ack, or not (a shortcut)
    )


def _default_question(schema: NamedSchema) -> str:
    return f"Extract the {schema.name.replace('_', ' ')} from this conversation."


async def answer_queued(deps: BotDeps, opened: turn_queue.Opened) -> None:
    """A queued `@bot json` turn, in whichever process holds the thread's lease."""
    from bot.turns import post_in_thread

    incoming = conversations.incoming_of(opened)

    async def say(text: str) -> None:
        await post_in_thread(deps, incoming.channel, incoming.thread_ts, text)

    record, shown = opened.record, False
    async with reported(say, unsaved=True, json=True):
        schema = await resolve_schema(deps, incoming.team, record["schema_arg"])
        turn = await conversations.prepare_opened(deps.core, opened)
        answer = await conversations.answer_json(deps.core, turn, schema)
        await _render(
            deps,
            channel=incoming.channel,
            ts="",
            thread_ts=incoming.thread_ts,
            update=False,
            turn=turn,
            schema=schema,
            answer=answer,
            question=record["question"],
            user=incoming.user,
        )
        shown = True
    if shown:
        await _record(deps, turn, answer)
