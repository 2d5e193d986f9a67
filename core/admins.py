"""Admins a workspace names itself, beside its Slack admins and owners: whoever installs
the app becomes the first, and admins add or remove others (`/finetune admins`). Kept in
Redis per workspace, so every process agrees; the deployment's ADMIN_USER_IDS still
count for every workspace it serves."""

from __future__ import annotations

from core import keys
from core.store import Store


async def add(store: Store, team: str, user: str) -> bool:
    """True if `user` wasn't an admin here yet."""
    return bool(await store.redis.sadd(keys.workspace(store.prefix, team).admins, user))


async def name_installer(store: Store, team: str, user: str) -> bool:
    """Make the workspace's first installer an admin: only the first (a later reinstall by
    a member must not make them one). True if `user` was named."""
    settings = keys.workspace(store.prefix, team).settings
    if not await store.redis.hsetnx(settings, "first_installer", user):
        return False
    return await add(store, team, user)


async def remove(store: Store, team: str, user: str) -> bool:
    return bool(await store.redis.srem(keys.workspace(store.prefix, team).admins, user))


async def is_named(store: Store, team: str, user: str) -> bool:
    return bool(await store.redis.sismember(keys.workspace(store.prefix, team).admins, user))


async def named(store: Store, team: str) -> list[str]:
    return sorted(m.decode() for m in await store.redis.smembers(keys.workspace(store.prefix, team).admins))
