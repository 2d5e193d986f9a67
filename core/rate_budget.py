"""Token buckets in Redis: rate limits that every process of the bot shares.

Slack limits each app per workspace and per method (and `chat.postMessage` per channel),
however many processes the app runs. A bucket per limit, refilled from Redis's own clock,
lets N processes spend one budget together. One script call per take, however many
buckets a call must fit in (a post: its channel's and its workspace's); they share the
workspace's hash tag.
"""

from __future__ import annotations

from dataclasses import dataclass

from core import keys
from core.store import Store

_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local keep, state, wait = tonumber(ARGV[1]), {}, 0
for i, key in ipairs(KEYS) do
  local rate, burst = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  local saved = redis.call('HMGET', key, 'tokens', 'at')
  local tokens, at = tonumber(saved[1]) or burst, tonumber(saved[2]) or now
  tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
  state[i] = tokens
  if tokens - 1 < keep then wait = math.max(wait, math.ceil((1 + keep - tokens) / rate * 1000)) end
end
-- All or nothing: a call refused by one bucket takes from none.
for i, key in ipairs(KEYS) do
  local rate, burst = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  local tokens = state[i]
  if wait == 0 then tokens = tokens - 1 end
  redis.call('HSET', key, 'tokens', tostring(tokens), 'at', tostring(now))
  redis.call('PEXPIRE', key, math.ceil((burst / rate) * 1000) + 1000)
end
return wait
"""


@dataclass(frozen=True)
class Limit:
    """`per_minute` on average, with bursts of up to `burst` calls."""

    per_minute: float
    burst: int

    @property
    def per_second(self) -> float:
        return self.per_minute / 60


async def take(store: Store, team: str, buckets: dict[str, Limit], *, keep: int = 0) -> int:
    """Take one call from every bucket named: 0 if granted, else milliseconds until it
    would be.

    `keep` leaves that many calls in each bucket, for calls that can't be skipped: an
    optional call (an intermediate edit) gives way to a required one.
    """
    script = store.redis.register_script(_TAKE)
    names = list(buckets)
    args: list[object] = [keep]
    for name in names:
        args += [repr(buckets[name].per_second), buckets[name].burst]
    return int(await script(keys=[keys.rate_bucket(store.prefix, team, n) for n in names], args=args))
