"""Token buckets in Redis: rate limits that every process of the bot shares.

Slack limits each app per workspace and per method (and `chat.postMessage` per channel),
however many processes the app runs. A bucket per limit, refilled from Redis's own clock,
lets N processes spend one budget together. One script call per take.
"""

from __future__ import annotations

from dataclasses import dataclass

from core import keys
from core.store import Store

_TAKE = """
local key, rate, burst, keep = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local state = redis.call('HMGET', key, 'tokens', 'at')
local tokens, at = tonumber(state[1]) or burst, tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local granted = tokens - 1 >= keep
if granted then tokens = tokens - 1 end
redis.call('HSET', key, 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', key, math.ceil((burst / rate) * 1000) + 1000)
if granted then return 0 end
return math.ceil((1 + keep - tokens) / rate * 1000)
"""


@dataclass(frozen=True)
class Limit:
    """`per_minute` on average, with bursts of up to `burst` calls."""

    per_minute: float
    burst: int

    @property
    def per_second(self) -> float:
        return self.per_minute / 60


async def take(store: Store, team: str, name: str, limit: Limit, *, keep: int = 0) -> int:
    """Take one call from the bucket: 0 if granted, else milliseconds until one would be.

    `keep` leaves that many calls in the bucket, for calls that can't be skipped: an
    optional call (an intermediate edit) gives way to a required one (an answer's end).
    """
    script = store.redis.register_script(_TAKE)
    key = keys.rate_bucket(store.prefix, team, name)
    return int(await script(keys=[key], args=[repr(limit.per_second), limit.burst, keep]))
