"""Conversation memory in Redis: a constant number of round trips per turn.

A conversation is three keys under one hash tag: the messages (a list of JSON), their
token counts (a parallel list of integers, counted once when stored), and a metadata
hash. Opening a turn is one script call that dedupes the event, appends the user's
message and returns only the newest messages that fit the token budget, walking the
cached counts from the tail. Closing a turn is one script too. So a turn costs two
round trips whatever the history length, and nothing is ever recounted.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from core import keys
from core.store import Store, scripts_together


def conversation_id(team: str, channel: str, thread_ts: str) -> str:
    """The id every function here takes: one Slack thread of one workspace."""
    return keys.conversation_id(team, channel, thread_ts)


# The newest messages that fit `budget`, walking cached counts from the tail, as one JSON
# array string (`window`), and the metadata a turn needs (`fields`). Expects `msgs`,
# `toks`, `meta`, `budget` and `n` (the history's length). Shared by core/turn_queue.py.
WINDOW_LUA = """
-- Walk cached counts from the newest message back until the budget is spent.
local total, count, step = 0, 0, 64
while count < n do
  local chunk = redis.call('LRANGE', toks, -(count + step), -(count + 1))
  local stop = false
  for i = #chunk, 1, -1 do
    local t = tonumber(chunk[i])
    if count > 0 and total + t > budget then stop = true break end
    total = total + t
    count = count + 1
  end
  if stop or #chunk < step then break end
end
-- One JSON array string: a single reply to parse instead of one per message.
local window = '[' .. table.concat(redis.call('LRANGE', msgs, -count, -1), ',') .. ']'
local wanted = {'persona', 'turns', 'messages', 'history_tokens', 'created', 'pane', 'context_channel', 'context_text'}
local values = redis.call('HMGET', meta, unpack(wanted))
local fields = {}
for i, name in ipairs(wanted) do
  if values[i] then table.insert(fields, name) table.insert(fields, values[i]) end
end
"""

_OPEN_TURN = """
local msgs, toks, meta, seen_event, seen_msg = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local message, tokens, budget = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local ttl, now, require_existing, dedupe_ttl = tonumber(ARGV[4]), ARGV[5], ARGV[6], tonumber(ARGV[7])
if require_existing == '1' and redis.call('EXISTS', meta) == 0 then
  return {'foreign'}
end
-- The markers hold this call's token: a retry of the same call (its reply was lost)
-- finds its own token and replays, anything else is a duplicate event.
local token = ARGV[8]
local replay = false
local markers = {seen_event}
if seen_msg ~= seen_event then table.insert(markers, seen_msg) end
for _, marker in ipairs(markers) do
  if not redis.call('SET', marker, token, 'NX', 'EX', dedupe_ttl) then
    if redis.call('GET', marker) ~= token then return {'duplicate'} end
    replay = true
  end
end
local n
if replay then
  n = redis.call('LLEN', msgs)
else
  n = redis.call('RPUSH', msgs, message)
  redis.call('RPUSH', toks, tokens)
  redis.call('HSETNX', meta, 'created', now)
  redis.call('HSET', meta, 'updated', now)
  redis.call('HINCRBY', meta, 'messages', 1)
  redis.call('HINCRBY', meta, 'history_tokens', tokens)
  redis.call('EXPIRE', msgs, ttl)
  redis.call('EXPIRE', toks, ttl)
  redis.call('EXPIRE', meta, ttl)
end
"""
_OPEN_TURN += WINDOW_LUA + "return {'ok', fields, window, n}\n"


@dataclass
class Turn:
    """What a turn starts from: the conversation's metadata and its newest messages."""

    status: str  # "ok", "duplicate" (already handled) or "foreign" (not our thread)
    meta: dict[str, str] = field(default_factory=dict)
    window: list[dict] = field(default_factory=list)
    length: int = 0  # messages in the whole history


def _decode_meta(flat: list) -> dict[str, str]:
    it = iter(v.decode() if isinstance(v, bytes) else v for v in flat)
    return dict(zip(it, it, strict=False))


async def open_turn(
    store: Store,
    conv_id: str,
    message: dict,
    *,
    budget: int,
    ttl: int,
    event_key: str,
    message_key: str,
    require_existing: bool = False,
) -> Turn:
    """Record the user's message and load the context window in one round trip.

    `message` must carry its cached `tokens`. `event_key` and `message_key` dedupe Slack
    retries (same event id) and double deliveries (same channel and ts).
    """
    k = keys.conversation(store.prefix, conv_id)
    script = store.redis.register_script(_OPEN_TURN)  # EVALSHA; loads the script once if missing
    result = await script(
        keys=[
            k.msgs,
            k.toks,
            k.meta,
            keys.seen(store.prefix, conv_id, event_key),
            keys.seen(store.prefix, conv_id, message_key),
        ],
        args=[
            json.dumps(message, separators=(",", ":")),
            int(message["tokens"]),
            int(budget),
            int(ttl),
            f"{time.time():.3f}",
            "1" if require_existing else "0",
            keys.DEDUPE_TTL_SECONDS,
            uuid.uuid4().hex,
        ],
    )
    status = result[0].decode() if isinstance(result[0], bytes) else result[0]
    if status != "ok":
        return Turn(status=status)
    return Turn(
        status="ok",
        meta=_decode_meta(result[1]),
        window=json.loads(result[2]),
        length=int(result[3]),
    )


_CLOSE_TURN = """
local msgs, toks, meta, done = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local ttl = tonumber(ARGV[1])
-- A retried call (the reply was lost, the write was not) must not append twice.
if not redis.call('SET', done, '1', 'NX', 'EX', tonumber(ARGV[2])) then return 0 end
if ARGV[3] ~= '' then
  redis.call('RPUSH', msgs, ARGV[3])
  redis.call('RPUSH', toks, ARGV[4])
  redis.call('HINCRBY', meta, 'messages', 1)
  redis.call('HINCRBY', meta, 'history_tokens', tonumber(ARGV[4]))
  redis.call('HINCRBY', meta, 'turns', 1)
end
local fields = cjson.decode(ARGV[5])
for name, value in pairs(fields.usage) do redis.call('HINCRBY', meta, 'usage_' .. name, value) end
for name, value in pairs(fields.meta) do redis.call('HSET', meta, name, value) end
redis.call('EXPIRE', msgs, ttl)
redis.call('EXPIRE', toks, ttl)
redis.call('EXPIRE', meta, ttl)
return 1
"""


async def close_turn(
    store: Store,
    conv_id: str,
    message: dict | None,
    *,
    ttl: int,
    usage: dict[str, int] | None = None,
    meta: dict[str, str] | None = None,
    also: list[tuple[str, list[str], list[Any]]] | None = None,
) -> None:
    """Append the assistant's reply and add usage to the totals, atomically and once;
    `also` goes in the same round trip (see `turn_queue.close`)."""
    k = keys.conversation(store.prefix, conv_id)
    done = keys.seen(store.prefix, conv_id, f"close:{uuid.uuid4().hex}")
    fields = {
        "usage": {name: int(value) for name, value in (usage or {}).items()},
        "meta": {"updated": f"{time.time():.3f}", **(meta or {})},
    }
    args = [
        int(ttl),
        keys.DEDUPE_TTL_SECONDS,
        json.dumps(message, separators=(",", ":")) if message is not None else "",
        int(message["tokens"]) if message is not None else 0,
        json.dumps(fields),
    ]
    await scripts_together(store, [(_CLOSE_TURN, [k.msgs, k.toks, k.meta, done], args), *(also or [])])


async def exists(store: Store, conv_id: str) -> bool:
    return bool(await store.redis.exists(keys.conversation(store.prefix, conv_id).meta))


async def get_meta(store: Store, conv_id: str) -> dict[str, str]:
    raw = await store.redis.hgetall(keys.conversation(store.prefix, conv_id).meta)
    return {k.decode(): v.decode() for k, v in raw.items()}


# Scripts rather than MULTI/EXEC, which core/ doesn't use on a Redis Cluster (see
# core/store.py): the keys share the conversation's hash tag, so one node runs each.
_SET_META = """
redis.call('HSETNX', KEYS[1], 'created', ARGV[2])
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
"""


async def set_meta(store: Store, conv_id: str, fields: dict[str, str], *, ttl: int) -> None:
    """Set metadata (e.g. the thread's persona), creating the conversation if needed."""
    k = keys.conversation(store.prefix, conv_id).meta
    pairs = [part for name, value in fields.items() for part in (name, value)]
    script = store.redis.register_script(_SET_META)
    await script(keys=[k], args=[int(ttl), f"{time.time():.3f}", *pairs])


_RESET = """
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('HSET', KEYS[3], 'messages', 0, 'history_tokens', 0, 'reset_at', ARGV[2])
redis.call('EXPIRE', KEYS[3], ARGV[1])
return 1
"""


async def reset(store: Store, conv_id: str, *, ttl: int) -> None:
    """Forget the messages but keep the thread known, with its persona and usage totals."""
    k = keys.conversation(store.prefix, conv_id)
    script = store.redis.register_script(_RESET)
    await script(keys=[k.msgs, k.toks, k.meta], args=[int(ttl), f"{time.time():.3f}"])


async def messages(store: Store, conv_id: str, start: int = 0, end: int = -1) -> list[dict]:
    """The stored history (for exports and tests; the turn path uses `open_turn`)."""
    raw = await store.redis.lrange(keys.conversation(store.prefix, conv_id).msgs, start, end)
    return [json.loads(m) for m in raw]


_CLAIM = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then return 1 end
return redis.call('GET', KEYS[1]) == ARGV[1] and 1 or 0
"""


async def claim(store: Store, conv_id: str, marker: str) -> bool:
    """True the first time `marker` is seen in this conversation (dedupes retried commands).

    The marker holds a token of this call, so a redis-py retry of the same call (its reply
    was lost) still gets True.
    """
    script = store.redis.register_script(_CLAIM)
    key = keys.seen(store.prefix, conv_id, marker)
    return bool(await script(keys=[key], args=[uuid.uuid4().hex, keys.DEDUPE_TTL_SECONDS]))


_SEED = """
local msgs, toks, meta = KEYS[1], KEYS[2], KEYS[3]
if redis.call('EXISTS', meta) == 1 then return 0 end
local n = tonumber(ARGV[1])
local total = 0
for i = 1, n do
  redis.call('RPUSH', msgs, ARGV[1 + i])
  redis.call('RPUSH', toks, ARGV[1 + n + i])
  total = total + tonumber(ARGV[1 + n + i])
end
redis.call('HSET', meta, 'created', ARGV[2 + 2 * n], 'updated', ARGV[2 + 2 * n], 'messages', n,
  'history_tokens', total, 'imported', n)
redis.call('EXPIRE', msgs, ARGV[3 + 2 * n])
redis.call('EXPIRE', toks, ARGV[3 + 2 * n])
redis.call('EXPIRE', meta, ARGV[3 + 2 * n])
return n
"""


async def seed(store: Store, conv_id: str, messages: list[dict], *, ttl: int) -> int:
    """Start a conversation with earlier messages (a thread the bot joins late), once.

    Does nothing if the conversation already exists, so two processes racing to import
    the same thread can't duplicate it. Each message must carry its `tokens`.
    """
    k = keys.conversation(store.prefix, conv_id)
    payload = [json.dumps(m, separators=(",", ":")) for m in messages]
    counts = [int(m["tokens"]) for m in messages]
    script = store.redis.register_script(_SEED)
    args = [len(messages), *payload, *counts, f"{time.time():.3f}", int(ttl)]
    return int(await script(keys=[k.msgs, k.toks, k.meta], args=args))
