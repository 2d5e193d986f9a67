"""Asking Slack who can read a conversation (see core/visibility.py for the rule itself).

Nothing here is cached: these calls run only for admin commands (a dataset build asks
once per distinct channel), and a channel can turn private at any time, so a stale
answer would be the one that leaks.
"""

from __future__ import annotations

import logging

from slack_sdk.errors import SlackApiError

from bot.deps import BotDeps
from bot.errors import NotAllowed
from core.visibility import DIRECT, PRIVATE, PUBLIC, SHARED, UNKNOWN_AUDIENCE

log = logging.getLogger(__name__)

MEMBER_PAGES = 20  # 20,000 members; past that we say no rather than page on


async def kind_of(deps: BotDeps, channel: str) -> str:
    """PUBLIC, PRIVATE, SHARED or DIRECT. Unknown (the bot can't see it) counts as PRIVATE: fail closed."""
    if channel.startswith("D"):
        return DIRECT
    try:
        info = (await deps.client.conversations_info(channel=channel))["channel"]
    except SlackApiError as exc:
        log.info("conversations.info failed (%s); treating the channel as private", exc.response.get("error"))
        return PRIVATE
    if info.get("is_im") or info.get("is_mpim"):
        return DIRECT
    if info.get("is_ext_shared") or info.get("is_shared") or info.get("is_pending_ext_shared"):
        return SHARED
    if info.get("is_private") or info.get("is_group"):
        return PRIVATE
    return PUBLIC


async def kinds_of(deps: BotDeps, channels: set[str]) -> dict[str, str]:
    return {c: await kind_of(deps, c) for c in sorted(channels)}


async def is_member(deps: BotDeps, channel: str, user: str) -> bool:
    cursor = None
    for _ in range(MEMBER_PAGES):
        try:
            page = await deps.client.conversations_members(channel=channel, limit=1000, cursor=cursor)
        except SlackApiError as exc:
            log.info("conversations.members failed (%s)", exc.response.get("error"))
            return False
        if user in page.get("members", []):
            return True
        cursor = (page.get("response_metadata") or {}).get("next_cursor")
        if not cursor:
            return False
    return False


async def bot_is_in(deps: BotDeps, channel: str) -> bool:
    """Whether the bot can read and post in `channel` (a DM with it always can)."""
    return channel.startswith("D") or await is_member(deps, channel, deps.bot_user_id)


async def dm_with(deps: BotDeps, user: str) -> str:
    return (await deps.client.conversations_open(users=user))["channel"]["id"]


async def destination(deps: BotDeps, *, audience: str | None, channel: str, user: str) -> str:
    """Where content with `audience` may go when `user` asks for it in `channel`.

    The channel itself when everyone there may read it; otherwise the asker's DM with the
    bot, provided they can read the source; otherwise nowhere (NotAllowed).
    """
    if audience == channel:
        return channel
    if audience == UNKNOWN_AUDIENCE:
        raise NotAllowed(
            "This dataset was saved before datasets recorded where their conversations came from, "
            "so I won't show its content anywhere. Build it again with `/finetune dataset build`."
        )
    if not audience and await kind_of(deps, channel) != SHARED:
        return channel  # workspace-public content, in a channel only workspace members read
    if audience and not await is_member(deps, audience, user):
        raise NotAllowed(
            "This holds conversations from a private channel or DM you're not a member of, "
            "so I won't show it to you."
        )
    return await dm_with(deps, user)
