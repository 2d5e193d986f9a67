"""The "Ask Threadwise about this" message shortcut and the global "Ask Threadwise" one.

Both open one modal: a question, a persona (optional: the thread's or channel's
otherwise) and where to answer. The question and persona are checked in the modal
(`response_action: errors`), so a mistake is fixed there, not after it closes.
- "In the thread": a turn in the message's thread, like a mention there; the persona
  picked answers this question only.
- "Only to me, here": an ephemeral answer in the thread over its history. Nothing is
  kept: the question and answer don't join the thread's memory, where other people's
  turns would see them.
- "Privately in a DM": a new thread in the user's DM with the bot, quoting the message,
  with the persona picked for that DM thread. Only the user sees it, and they could
  already see the message they asked about.
The global shortcut has no message: it answers in a DM.
"""

from __future__ import annotations

import json
import logging
import time
import uuid

from openai import OpenAIError
from redis.exceptions import RedisError
from slack_sdk.errors import SlackApiError

from bot import blocks, messages, visibility
from bot.deps import BotDeps
from bot.turns import run_turn
from core import conversations, llm, personas
from core.conversations import Incoming

log = logging.getLogger(__name__)

ASK_ABOUT_MESSAGE = "ask_about_message"
ASK_ANYWHERE = "ask_threadwise"
ASK_MODAL = "ask_modal"
MAX_QUESTION = 3_000
EPHEMERAL_CHARS = 11_000  # one ephemeral message; a longer answer is cut (it can't be continued)
EXCERPT_CHARS = 2_000


def persona_input(names: list[str]) -> dict:
    """An optional persona picker: the first 100 (Slack's limit for a static menu)."""
    hint = "Leave empty for the thread's or channel's persona."
    if len(names) > blocks.MENU_LIMIT:
        hint += " Only the first 100 are listed; /persona lists all."
    menu = {"type": "static_select", "action_id": "name", "options": blocks.options(names or ["default"])}
    return blocks.input_block("persona", "Persona", menu, optional=True, hint=hint)


def ask_modal(
    *, excerpt: str, metadata: dict, can_answer_in_thread: bool, persona_names: list[str] = ()
) -> dict:
    """The modal (pure): the message asked about, the question, a persona, and where to answer."""
    where = [("dm", "Privately, in a DM with me")]
    if can_answer_in_thread:
        where[:0] = [
            ("thread", "In the message's thread, for everyone there"),
            ("ephemeral", "Only to me, in the thread (not kept)"),
        ]
    choices = [{"text": {"type": "plain_text", "text": label}, "value": value} for value, label in where]
    layout: list[dict] = []
    if excerpt:
        layout.append(blocks.context_line("About: " + blocks.escape(blocks.cut(excerpt, 300))))
    layout += [
        blocks.input_block(
            "question", "Your question", blocks.text_input("text", multiline=True, max_length=MAX_QUESTION)
        ),
        persona_input(list(persona_names)),
        blocks.input_block(
            "where",
            "Answer",
            {
                "type": "radio_buttons",
                "action_id": "choice",
                "options": choices,
                "initial_option": choices[0],
            },
        ),
    ]
    return blocks.modal(ASK_MODAL, "Ask Threadwise", "Ask", layout, metadata)


async def handle_ask_shortcut(ack, body: dict, client, deps: BotDeps) -> None:
    await ack()
    message = body.get("message") or {}
    channel = (body.get("channel") or {}).get("id", "")
    metadata = {
        "channel": channel,
        "ts": message.get("ts", ""),
        "thread_ts": message.get("thread_ts") or message.get("ts", ""),
        # the message asked about, for the question (Slack keeps private_metadata to 3,000)
        "excerpt": blocks.cut(message.get("text", ""), EXCERPT_CHARS),
    }
    team = (body.get("team") or {}).get("id", "") or deps.team_id
    view = ask_modal(
        excerpt=message.get("text", ""),
        metadata=metadata,
        can_answer_in_thread=bool(channel and message),
        persona_names=await picker_names(deps, team),
    )
    await client.views_open(trigger_id=body["trigger_id"], view=view)


async def handle_ask_submission(ack, body: dict, view: dict, deps: BotDeps) -> None:
    values = view.get("state", {}).get("values", {})
    question = ((values.get("question") or {}).get("text") or {}).get("value") or ""
    where = (((values.get("where") or {}).get("choice") or {}).get("selected_option") or {}).get(
        "value", "dm"
    )
    if not question.strip():
        await ack(response_action="errors", errors={"question": "Ask something first."})
        return
    if len(question) > MAX_QUESTION:
        await ack(response_action="errors", errors={"question": f"Keep it under {MAX_QUESTION} characters."})
        return
    team = (body.get("team") or {}).get("id", "") or deps.team_id
    persona = (((values.get("persona") or {}).get("name") or {}).get("selected_option") or {}).get(
        "value", ""
    )
    try:
        gone = bool(persona) and await personas.get(deps.core.store, team, persona) is None
    except RedisError:
        await ack(response_action="errors", errors={"persona": messages.STORE_DOWN_SHORT})
        return
    if gone:
        await ack(
            response_action="errors", errors={"persona": "That persona no longer exists; pick another."}
        )
        return
    await ack()
    metadata = json.loads(view.get("private_metadata") or "{}")
    metadata["persona"] = persona
    user = (body.get("user") or {}).get("id", "")
    deps.tasks.spawn(_answer(deps, team, user, question.strip(), where, metadata), name="ask")


async def _answer(deps: BotDeps, team: str, user: str, question: str, where: str, metadata: dict) -> None:
    channel, thread_ts = metadata.get("channel", ""), metadata.get("thread_ts", "")
    if metadata.get("excerpt"):
        question = 'About this message: "' + metadata["excerpt"] + '"' + "\n\n" + question
    request_id = uuid.uuid4().hex  # one submission is one request (Slack doesn't retry it)
    persona = metadata.get("persona") or ""
    if where in ("thread", "ephemeral") and channel and thread_ts:
        if not await visibility.bot_is_in(deps, channel):
            where = "dm"  # can't post there: answer privately instead, and say why
            question = f"{question}\n\n({messages.ASK_NOT_IN_CHANNEL.format(channel=channel)})"
    if where in ("thread", "ephemeral") and channel and thread_ts:
        ts = request_ts()
        incoming = Incoming(team, channel, thread_ts, user, question, ts, event_id=f"ask:{request_id}:{ts}")
        if where == "ephemeral":
            await _aside(deps, incoming, persona)
            return
        fields = {"persona": persona} if persona else {}
        await run_turn(deps, incoming, joined_thread=not channel.startswith("D"), accepted=False, **fields)
        return
    dm = await visibility.dm_with(deps, user)
    head = f"You asked: {blocks.escape(question)}"
    if channel:
        head = f"About a message in <#{channel}>. " + head
    posted = await deps.client.chat_postMessage(channel=dm, text=head, blocks=blocks.notice(head))
    text = question if not metadata.get("ts") else f"(About a message in <#{channel}>.) {question}"
    incoming = Incoming(team, dm, posted["ts"], user, text, posted["ts"], event_id=f"ask:{posted['ts']}")
    if persona:  # the DM thread is the user's own: the persona stays with it
        choice = personas.Choice(persona, by=user)
        await personas.set_thread(
            deps.core.store, team, dm, posted["ts"], choice, ttl=deps.settings.conversation_ttl_seconds
        )
    await run_turn(deps, incoming, accepted=False)


async def _aside(deps: BotDeps, incoming: Incoming, persona: str) -> None:
    """An ephemeral answer over the thread's history that leaves nothing behind."""
    from bot import limits
    from bot.thread_import import thread_context

    async def tell(text: str, layout: list[dict]) -> None:
        try:
            await deps.client.chat_postEphemeral(
                channel=incoming.channel,
                user=incoming.user,
                thread_ts=incoming.thread_ts,
                text=blocks.fallback_text(text),
                blocks=layout,
            )
        except SlackApiError as exc:
            log.warning("Couldn't show a private answer: %s", exc.response.get("error"))

    try:
        if await limits.refused(deps, incoming, kept=False):
            return
        earlier, left_out = await thread_context(deps, incoming)
        answer = await conversations.aside(deps.core, incoming, earlier, persona=persona)
    except conversations.Flagged:
        await tell(messages.FLAGGED, blocks.notice(messages.FLAGGED))
        return
    except RedisError:
        await tell(messages.STORE_DOWN, blocks.notice(messages.STORE_DOWN))
        return
    except OpenAIError as exc:
        text = messages.llm_error(llm.error_kind(exc))
        await tell(text, blocks.notice(text))
        return
    answer = blocks.defang(answer) or messages.EMPTY_ANSWER
    shown = blocks.cut(answer, EPHEMERAL_CHARS)
    footer = blocks.context_line(
        "Only you can see this answer; it isn't kept in the thread's memory."
        + (f" {left_out}." if left_out else "")
    )
    await tell(shown, [blocks.markdown(shown), footer])


async def picker_names(deps: BotDeps, team: str) -> list[str]:
    """Every persona a picker offers; the built-ins alone while Redis is down (the modal
    still opens: the question is what matters)."""
    try:
        custom = await personas.list_custom(deps.core.store, team)
    except RedisError as exc:
        log.warning("Couldn't list custom personas for a modal: %s", type(exc).__name__)
        custom = []
    return list(personas.BUILTINS) + [p.name for p in custom]


def request_ts() -> str:
    """A ts for a request that isn't a message: after everything already in the thread."""
    return f"{time.time():.6f}"
