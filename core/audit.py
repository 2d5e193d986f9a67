"""The admin audit log: every admin action and every refused attempt, per workspace."""

from __future__ import annotations

import json
import re
import time

from core import keys
from core.store import Store

KEEP = 1000
# An API key typed into a command is never kept, whatever the command: only its end
_SECRET = re.compile(r"\b(sk-|xox[abpre]-|xapp-)[A-Za-z0-9_\-.]{8,}")


def _redacted(found: re.Match) -> str:
    return f"{found.group(1)}…{found.group(0)[-4:]}"


# A script, not MULTI/EXEC (core/ uses none on a Redis Cluster, see core/store.py).
_RECORD = """
redis.call('LPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[2]) - 1)
return 1
"""


async def record(store: Store, team: str, *, user: str, action: str, allowed: bool, detail: str = "") -> None:
    entry = {
        "at": round(time.time(), 3),
        "user": user,
        "action": action,
        "allowed": allowed,
        "detail": _SECRET.sub(_redacted, detail)[:300],
    }
    key = keys.workspace(store.prefix, team).audit
    await store.redis.register_script(_RECORD)(keys=[key], args=[json.dumps(entry), KEEP])


async def recent(store: Store, team: str, n: int = 20) -> list[dict]:
    raw = await store.redis.lrange(keys.workspace(store.prefix, team).audit, 0, n - 1)
    return [json.loads(r) for r in raw]
