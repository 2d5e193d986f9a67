"""Reading a thread once, when the bot is first mentioned in a discussion it didn't see.

"@Threadwise json action_items" under a long human thread needs that thread. We read it
with conversations.replies exactly once, when the conversation doesn't exist yet, and
keep it in Redis; every later turn uses Redis only.
"""

from __future__ import annotations

import logging

from slack_sdk.errors import SlackApiError

from bot import messages
from bot.deps import BotDeps
from core import history, tokens
from core.conversations import Incoming, speaker_line

log = logging.getLogger(__name__)

MAX_IMPORTED = 100
LIMITED_READ = 15  # messages per conversations.replies call for distributed installs
KNOWN_LIMIT = 10_000


def _remember(deps: BotDeps, conv_id: str) -> None:
    known = deps.known_threads
    known[conv_id] = None
    known.move_to_end(conv_id)
    while len(known) > KNOWN_LIMIT:
        known.popitem(last=False)


async def _read_thread(
    deps: BotDeps, team: str, channel: str, thread_ts: str, max_pages: int = 10
) -> tuple[list[dict], str]:
    """The whole thread, oldest first (replies come in pages), and a note of what was left
    out. A distributed install (outside the Marketplace) may read one page of 15 messages a
    minute per workspace: it reads at most that, or nothing when the minute's read is spent."""
    if deps.settings.slack_install_kind == "distributed":
        if not await deps.rates.history_read(team, "conversations.replies"):
            return [], messages.THREAD_NOT_READ
        page = await deps.client.conversations_replies(channel=channel, ts=thread_ts, limit=LIMITED_READ)
        found = page.get("messages", [])[:LIMITED_READ]
        return found, messages.THREAD_CUT.format(n=len(found)) if page.get("has_more") else ""
    found: list[dict] = []
    cursor = None
    for _ in range(max_pages):
        page = await deps.client.conversations_replies(
            channel=channel, ts=thread_ts, limit=1000, cursor=cursor
        )
        found += page.get("messages", [])
        cursor = (page.get("response_metadata") or {}).get("next_cursor")
        if not page.get("has_more") or not cursor:
            break
    return found, ""


def as_history(deps: BotDeps, thread: list[dict], *, skip_ts: str = "") -> list[dict]:
    """Slack messages (oldest first) as stored history: the bot's own as its answers,
    people's with who said them; other bots' are left out."""
    model = deps.settings.openai_model
    earlier = []
    for m in thread[-MAX_IMPORTED - 1 :]:
        if m.get("ts") == skip_ts or not m.get("text"):
            continue
        if m.get("user") == deps.bot_user_id or m.get("bot_id") == deps.bot_id:
            msg = {"role": "assistant", "content": m["text"]}
        elif m.get("bot_id"):
            continue
        else:
            msg = {
                "role": "user",
                "content": speaker_line(m.get("user", "unknown"), m["text"]),
                "user": m.get("user", ""),
            }
        msg["tokens"] = tokens.count_message(msg, model)
        msg["ts"] = m.get("ts", "")
        earlier.append(msg)
    return earlier


async def thread_context(deps: BotDeps, incoming: Incoming) -> tuple[list[dict], str]:
    """A thread's history without keeping anything: ours from Redis if we have it, else
    read once from Slack (for a private aside that must leave no trace in the thread);
    and a note of what was left out."""
    stored = await history.messages(deps.core.store, incoming.conv_id, -MAX_IMPORTED, -1)
    if stored:
        return stored, ""
    try:
        thread, note = await _read_thread(deps, incoming.team, incoming.channel, incoming.thread_ts)
    except SlackApiError as exc:
        log.info("Could not read the thread for a private answer: %s", exc.response.get("error"))
        return [], ""
    return as_history(deps, thread), note


async def import_thread_once(deps: BotDeps, incoming: Incoming) -> str:
    """Read the thread into memory if we never saw it; a note of what was left out."""
    conv_id = incoming.conv_id
    if conv_id in deps.known_threads:
        return ""
    store = deps.core.store
    if await history.exists(store, conv_id):
        _remember(deps, conv_id)
        return ""
    try:
        thread, note = await _read_thread(deps, incoming.team, incoming.channel, incoming.thread_ts)
    except SlackApiError as exc:
        log.info("Could not read the thread to join it: %s", exc.response.get("error"))
        return ""
    earlier = as_history(deps, thread, skip_ts=incoming.ts)
    if earlier:
        await history.seed(store, conv_id, earlier, ttl=deps.settings.conversation_ttl_seconds)
    if thread:  # a thread not read now (the minute's read was spent) is tried again next time
        _remember(deps, conv_id)
    return note
