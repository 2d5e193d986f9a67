"""The assistant pane: a greeting and suggested prompts when a user opens a thread there.

Questions asked in the pane arrive as DMs in that thread and take the usual path
(bot/listeners/events/message.py), with the same Redis memory as any thread. What the
pane adds is handled here, and in bot/turns.py (its title, its status line):
- `assistant_thread_started`: the active persona greets and offers 3-4 prompts;
- `assistant_thread_started` and `assistant_thread_context_changed`: the channel the
  user is looking at is read once (its latest messages, only where the bot is a member)
  and kept with the thread, so pane answers can draw on it (core/conversations.py
  `in_view`); the greeting says whether it could read it.

Privacy: the pane is the user's own, and they are looking at that channel, so they can
read it; the bot reads it with its own membership, never more.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from redis.exceptions import RedisError
from slack_sdk.errors import SlackApiError

from bot import blocks, messages
from bot.deps import BotDeps
from core import history, personas

log = logging.getLogger(__name__)

VIEW_MESSAGES = 30  # one conversations.history call (Tier 3) per context change
VIEW_CHARS = 4_000  # about a thousand tokens of the system prompt
LIMITED_VIEW = 15  # a distributed install's conversations.history page


async def handle_assistant_thread_started(body: dict, event: dict, deps: BotDeps) -> None:
    thread = event.get("assistant_thread") or {}
    channel, thread_ts = thread.get("channel_id", ""), thread.get("thread_ts", "")
    if not channel or not thread_ts:
        return
    deps.tasks.spawn(_greet(deps, body.get("team_id", ""), channel, thread_ts, thread.get("context") or {}))


async def _greet(deps: BotDeps, team: str, channel: str, thread_ts: str, context: dict) -> None:
    looking_at = context.get("channel_id", "")
    view = await read_view(deps, looking_at, team)
    try:
        await history.set_meta(
            deps.core.store,
            history.conversation_id(team, channel, thread_ts),
            {"pane": "1", "context_channel": looking_at, "context_text": view.text},
            ttl=deps.settings.conversation_ttl_seconds,
        )
        resolved = await personas.resolve(
            deps.core.store, team, channel, None, default_team_prompt=deps.settings.workspace_persona_prompt
        )
    except RedisError as exc:
        log.error("Redis unavailable when a pane thread opened: %s", type(exc).__name__)
        await _say(deps, channel, thread_ts, messages.STORE_DOWN, blocks.notice(messages.STORE_DOWN))
        return
    text, layout = blocks.pane_greeting(
        persona=resolved.choice.name,
        domain=resolved.choice.domain,
        description=resolved.persona.description,
        view=view.note,
    )
    await _say(deps, channel, thread_ts, text, layout)
    try:
        prompts = await personas.prompts_for(deps.core.store, team, resolved.choice.name)
        await deps.client.assistant_threads_setSuggestedPrompts(
            channel_id=channel, thread_ts=thread_ts, prompts=prompts
        )
    except RedisError as exc:
        log.warning("Couldn't load the pane's suggested prompts: %s", type(exc).__name__)
    except SlackApiError as exc:
        log.info("Couldn't set the pane's suggested prompts: %s", exc.response.get("error"))


async def handle_assistant_thread_context_changed(body: dict, event: dict, deps: BotDeps) -> None:
    thread = event.get("assistant_thread") or {}
    channel, thread_ts = thread.get("channel_id", ""), thread.get("thread_ts", "")
    if channel and thread_ts:
        conv_id = history.conversation_id(body.get("team_id", ""), channel, thread_ts)
        looking_at = (thread.get("context") or {}).get("channel_id", "")
        deps.tasks.spawn(_remember_context(deps, conv_id, looking_at))


async def _remember_context(deps: BotDeps, conv_id: str, looking_at: str) -> None:
    view = await read_view(deps, looking_at, conv_id.split(":", 1)[0])
    try:
        await history.set_meta(
            deps.core.store,
            conv_id,
            {"pane": "1", "context_channel": looking_at, "context_text": view.text},
            ttl=deps.settings.conversation_ttl_seconds,
        )
    except RedisError as exc:
        log.warning("Couldn't remember a pane thread's context: %s", type(exc).__name__)


@dataclass(frozen=True)
class View:
    text: str  # the channel's latest messages, for the model ("" when unread)
    note: str  # what the user is told about it (our own Slack markup)


async def read_view(deps: BotDeps, channel: str, team: str = "") -> View:
    """The latest messages of the channel in view, read once, with the bot's membership.
    A distributed install (outside the Marketplace) reads 15, once a minute per workspace."""
    if not channel or channel.startswith("D"):
        return View("", "")
    limited = deps.settings.slack_install_kind == "distributed"
    if limited and not await deps.rates.history_read(team or deps.team_id, "conversations.history"):
        return View("", messages.VIEW_NOT_READ.format(channel=channel))
    try:
        page = await deps.client.conversations_history(
            channel=channel, limit=LIMITED_VIEW if limited else VIEW_MESSAGES
        )
    except SlackApiError as exc:
        if exc.response.get("error") == "not_in_channel":
            return View("", messages.VIEW_NOT_MEMBER.format(channel=channel))
        log.info("Couldn't read the channel in view: %s", exc.response.get("error"))
        return View("", messages.VIEW_UNREADABLE.format(channel=channel))
    lines = [
        f"<@{m.get('user', '?')}>: {' '.join(m.get('text', '').split())}"
        for m in reversed(page.get("messages") or [])
        if m.get("text") and not m.get("subtype")
    ]
    text = "\n".join(lines)[-VIEW_CHARS:]
    if not text:
        return View("", "")
    if limited and page.get("has_more"):
        return View(text, messages.VIEW_CUT.format(channel=channel, n=len(lines)))
    return View(text, messages.VIEW_READ.format(channel=channel, n=len(lines)))


async def _say(deps: BotDeps, channel: str, thread_ts: str, text: str, layout: list[dict]) -> None:
    try:
        await deps.client.chat_postMessage(channel=channel, thread_ts=thread_ts, text=text, blocks=layout)
    except SlackApiError as exc:
        log.warning("Couldn't greet in the pane: %s", exc.response.get("error"))
