"""Who may run admin actions: one helper for personas, schemas and fine-tuning.

Admins are the users in ADMIN_USER_IDS, the ones the workspace named (its installer,
and `/finetune admins add`, core/admins.py), and the workspace's admins and owners (from
users.info). The answer is cached per process for at most a minute, so a demoted admin
loses access within 60 s; the cache is bounded so a flood of distinct users can't grow it.
ADMIN_CHANNEL_IDS, if set, limits where admin commands work. Every decision, allowed or
refused, goes to the audit log. Only a person's own command or button click reaches
here, never model output.
"""

from __future__ import annotations

import logging
import time

from redis.exceptions import RedisError
from slack_sdk.errors import SlackApiError

from bot.deps import BotDeps
from core import admins, audit

log = logging.getLogger(__name__)

CACHE_SECONDS = 60
CACHE_SIZE = 1000
_clock = time.monotonic  # the cache's clock (a test moves it on instead of sleeping a minute)

NOT_ADMIN = (
    ":lock: `{action}` is for admins only. Admins are the workspace's admins and owners and "
    "the users listed in ADMIN_USER_IDS; ask one of them. (This attempt was logged.)"
)
WRONG_CHANNEL = ":lock: Admin commands only work in these channels: {channels}. (This attempt was logged.)"


async def is_admin(deps: BotDeps, team: str, user: str) -> bool:
    if user in deps.settings.admin_user_ids:
        return True
    cache = deps.admin_cache  # per process on purpose: a copy of Slack's answer, at most a minute old
    cached = cache.get((team, user))
    if cached and _clock() - cached[0] < CACHE_SECONDS:
        return cached[1]
    try:
        allowed = await admins.is_named(deps.core.store, team, user)
    except RedisError as exc:  # Slack's own admins still count
        log.warning("Couldn't read the workspace's admins: %s", type(exc).__name__)
        allowed = False
    if not allowed:
        try:
            info = (await deps.client.users_info(user=user))["user"]
        except SlackApiError as exc:
            log.warning("users.info failed for an admin check: %s", exc.response.get("error"))
            return False
        allowed = bool(info.get("is_admin") or info.get("is_owner") or info.get("is_primary_owner"))
    cache[(team, user)] = (_clock(), allowed)
    cache.move_to_end((team, user))
    while len(cache) > CACHE_SIZE:
        cache.popitem(last=False)
    return allowed


def admin_channels(deps: BotDeps) -> frozenset[str]:
    """Where admin commands work (ADMIN_CHANNEL_IDS). With many workspaces, none is set:
    channels belong to one workspace, and the setting is the deployment's."""
    return deps.settings.admin_channel_ids if deps.installations is None else frozenset()


async def check_admin(
    deps: BotDeps, *, team: str, user: str, channel: str | None, action: str, detail: str = ""
) -> str | None:
    """None if `user` may do `action` here; otherwise the refusal to show them. `channel`
    None: a private surface (App Home), where ADMIN_CHANNEL_IDS doesn't apply."""
    refusal = None
    allowed_channels = admin_channels(deps)
    if allowed_channels and channel is not None and channel not in allowed_channels:
        refusal = WRONG_CHANNEL.format(channels=", ".join(f"<#{c}>" for c in sorted(allowed_channels)))
    elif not await is_admin(deps, team, user):
        refusal = NOT_ADMIN.format(action=action)
    if refusal:
        log.warning("Refused admin action %s by %s in %s", action, user, channel)
    await audit.record(
        deps.core.store, team, user=user, action=action, allowed=refusal is None, detail=detail
    )
    return refusal


def clear_cached(deps: BotDeps, team: str, user: str) -> None:
    """Forget this process's answer for `user` (their role just changed here)."""
    deps.admin_cache.pop((team, user), None)
