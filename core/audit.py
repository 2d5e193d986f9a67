"""The admin audit log: every admin action and every refused attempt, per workspace."""

from __future__ import annotations

import json
import time

from core import keys
from core.store import Store

KEEP = 1000


async def record(store: Store, team: str, *, user: str, action: str, allowed: bool, detail: str = "") -> None:
    entry = {
        "at": round(time.time(), 3),
        "user": user,
        "action": action,
        "allowed": allowed,
        "detail": detail[:300],
    }
    key = keys.workspace(store.prefix, team).audit
    async with store.redis.pipeline(transaction=True) as pipe:
        pipe.lpush(key, json.dumps(entry))
        pipe.ltrim(key, 0, KEEP - 1)
        await pipe.execute()


async def recent(store: Store, team: str, n: int = 20) -> list[dict]:
    raw = await store.redis.lrange(keys.workspace(store.prefix, team).audit, 0, n - 1)
    return [json.loads(r) for r in raw]
