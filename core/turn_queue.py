"""Turns of one thread run one at a time, in arrival order, whichever process got them.

Several bot processes share one Redis. Each conversation has a queue of turns (a Redis
list, under the conversation's hash tag) and a lease: a key holding `owner|fence` with a
TTL. Whoever holds the lease takes the queue's turns one after another; everyone else
only appends to the queue. So answer k is built after answer k-1 was recorded, and its
context holds messages 1..k, on one process or ten.

- `enqueue` dedupes the event, appends the turn and, if nobody holds the lease, takes it
  and opens the head turn, all in one script.
- The holder renews the lease (`renew`) while it works. `close` records the answer, pops
  the turn and opens the next one, or releases the lease when the queue is empty.
  Nothing can slip between "queue empty" and "lease released": both happen in one script,
  and `enqueue` takes the lease in one script too.
- Fencing: each new holder gets the next number from the conversation's counter, and
  every write checks that the lease still names the caller's number. A holder that
  stalled past its lease (a long GC pause, a partition) finds out at its next write and
  stops; it can't write over the process that took over.
- It can't deadlock: a lease is a key with a TTL, not a lock held by a connection or a
  process. If the holder dies, the lease expires within `lease_ms`, and any process's
  recovery scan of `keys.open_turns` adopts the queue (`adopt`). The head turn's user
  message is appended to the history only once (meta `head` holds its token), and the
  Slack message it was being shown in (`head_shown`) is handed to the new holder, so a
  half-shown answer is replaced, never duplicated.

State here is all in Redis: it must agree across processes.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from core import keys
from core.history import WINDOW_LUA, _decode_meta
from core.store import Store, scripts_together

LEASE_MS = 8_000  # a dead holder's turns are adopted within this plus one scan interval
MAX_TRIES = 3  # a turn that took down its process this often is given up, with a note

# Opens the queue's head turn: appends its user message to the history the first time,
# counts the attempt, and returns the context window. Expects msgs, toks, meta, queue,
# budget, ttl and now.
_OPEN_HEAD = (
    """
local function open_head(f)
  local raw = redis.call('LINDEX', queue, 0)
  local head = cjson.decode(raw)
  local tries
  if redis.call('HGET', meta, 'head') ~= head.token then
    redis.call('RPUSH', msgs, head.message)
    redis.call('RPUSH', toks, head.tokens)
    redis.call('HSETNX', meta, 'created', now)
    redis.call('HSET', meta, 'updated', now, 'head', head.token, 'head_tries', 1, 'head_fence', f)
    redis.call('HDEL', meta, 'head_shown')
    redis.call('HINCRBY', meta, 'messages', 1)
    redis.call('HINCRBY', meta, 'history_tokens', head.tokens)
    tries = 1
  elseif redis.call('HGET', meta, 'head_fence') ~= tostring(f) then
    -- a new holder (an adoption) opens it again: that is another try
    tries = redis.call('HINCRBY', meta, 'head_tries', 1)
    redis.call('HSET', meta, 'head_fence', f)
  else
    -- the same holder's retried call (its reply was lost): not another try
    tries = tonumber(redis.call('HGET', meta, 'head_tries'))
  end
  for _, key in ipairs({msgs, toks, meta, queue}) do redis.call('EXPIRE', key, ttl) end
  local n = redis.call('LLEN', msgs)
"""
    + WINDOW_LUA
    + """
  return {raw, fields, window, n, tries, redis.call('HGET', meta, 'head_shown') or ''}
end
"""
)

# Messages acked by any process moments ago and not queued yet, earlier in Slack's order
# than the (unopened) head: the head waits for them, and whoever queues them takes the
# lease. (After a lease, they count as orphans and recovery takes over.) Expects meta,
# queue, inbox, now and lease_ms.
_WAITS_FOR_EARLIER = """
local function waits_for_earlier()
  local head = cjson.decode(redis.call('LINDEX', queue, 0))
  if redis.call('HGET', meta, 'head') == head.token then return false end
  for _, raw in ipairs(redis.call('HVALS', inbox)) do
    local e = cjson.decode(raw)
    if e.ts and e.ts < head.ts and e.at > tonumber(now) - lease_ms / 1000 then return true end
  end
  return false
end
"""

_TAKE_LEASE = """
local function take_lease()
  local f = tostring(redis.call('INCR', fence))
  redis.call('EXPIRE', fence, ttl)
  redis.call('SET', lease, owner .. '|' .. f, 'PX', lease_ms)
  return f
end
"""

_ENQUEUE = (
    """
local msgs, toks, meta, queue, lease, fence = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local record, token, require_existing, owner = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local lease_ms, dedupe_ttl, budget = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local ttl, now, park_ms, parked = tonumber(ARGV[8]), ARGV[9], tonumber(ARGV[11]), KEYS[7]
local inbox = KEYS[8]
-- Whatever happens to it below, the event is handled: it leaves the inbox (see accept).
redis.call('HDEL', inbox, ARGV[12])
"""
    + _OPEN_HEAD
    + _TAKE_LEASE
    + _WAITS_FOR_EARLIER
    + """
if require_existing == '1' and redis.call('EXISTS', meta) == 0 and redis.call('LLEN', queue) == 0 then
  -- Not our thread, or its first mention is still on its way (another process, or a
  -- replay after its process died): keep the follow-up for that mention to take in
  -- (below), and its markers as long, so a retry of it isn't parked twice.
  for i = 9, #KEYS do
    if not redis.call('SET', KEYS[i], token, 'NX', 'PX', park_ms) then return {'foreign'} end
  end
  if redis.call('LLEN', parked) < 100 then
    redis.call('RPUSH', parked, record)
    redis.call('PEXPIRE', parked, park_ms)
  end
  return {'foreign'}
end
-- The markers hold this call's token: a retry of the same call (its reply was lost)
-- finds its own token and doesn't queue twice; anything else is a duplicate event.
local replay, duplicate = false, false
for i = 9, #KEYS do
  local holder = redis.call('GET', KEYS[i])
  if holder and holder ~= token then duplicate = true break end
  if holder then replay = true end
end
if not duplicate then
  for i = 9, #KEYS do redis.call('SET', KEYS[i], token, 'EX', dedupe_ttl) end
end
if duplicate then
  -- nothing to queue; but it may be what the queue was waiting for (below)
elseif replay then
  -- A retried call (its reply was lost): if its first run took the lease, say so again.
  local held = redis.call('GET', lease)
  if held and string.sub(held, 1, #owner + 1) == owner .. '|' and redis.call('LLEN', queue) > 0 then
    local f = string.sub(held, #owner + 2)
    return {'lead', f, unpack(open_head(f))}
  end
else
  -- Slack's order, not delivery order: a message delivered late (another process, a
  -- retry) goes before later messages still waiting; never before an opened head.
  local ts, pivot = ARGV[10], nil
  local len = redis.call('LLEN', queue)
  local first = 1
  if len > 0 and redis.call('HGET', meta, 'head') ~= cjson.decode(redis.call('LINDEX', queue, 0)).token then
    first = 0
  end
  for i = len - 1, math.max(first, len - 50), -1 do
    local queued = redis.call('LINDEX', queue, i)
    if cjson.decode(queued).ts <= ts then break end
    pivot = queued
  end
  if pivot then redis.call('LINSERT', queue, 'BEFORE', pivot, record)
  else redis.call('RPUSH', queue, record) end
  -- A mention that starts the thread takes in the follow-ups that overtook it.
  local early = redis.call('LRANGE', parked, 0, -1)
  if require_existing ~= '1' and #early > 0 then
    local later, seen_ts = {}, {}
    for _, raw in ipairs(early) do
      local r = cjson.decode(raw)
      if r.ts > ts and not seen_ts[r.ts] then seen_ts[r.ts] = true table.insert(later, {r.ts, raw}) end
    end
    table.sort(later, function(x, y) return x[1] < y[1] end)
    for _, item in ipairs(later) do redis.call('RPUSH', queue, item[2]) end
    redis.call('DEL', parked)
  end
  redis.call('EXPIRE', queue, ttl)
end
if redis.call('EXISTS', lease) == 1 or redis.call('LLEN', queue) == 0 or waits_for_earlier() then
  return {duplicate and 'duplicate' or 'queued'}
end
local f = take_lease()
return {'lead', f, unpack(open_head(f))}
"""
)

_CLOSE = (
    """
local msgs, toks, meta, queue, lease, inbox = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local holder, token, answer, answer_tokens = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local fields, ttl, lease_ms = cjson.decode(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local budget, now = tonumber(ARGV[8]), ARGV[9]
"""
    + _OPEN_HEAD
    + _WAITS_FOR_EARLIER
    + """
if redis.call('GET', lease) ~= holder then return {'lost'} end
local raw = redis.call('LINDEX', queue, 0)
-- Only the turn this holder opened is closed: a retried call (its reply was lost)
-- finds the head already popped and records nothing twice.
if raw and cjson.decode(raw).token == token then
  if answer ~= '' then
    redis.call('RPUSH', msgs, answer)
    redis.call('RPUSH', toks, answer_tokens)
    redis.call('HINCRBY', meta, 'messages', 1)
    redis.call('HINCRBY', meta, 'history_tokens', answer_tokens)
    redis.call('HINCRBY', meta, 'turns', 1)
  end
  for name, value in pairs(fields.usage) do redis.call('HINCRBY', meta, 'usage_' .. name, value) end
  for name, value in pairs(fields.meta) do redis.call('HSET', meta, name, value) end
  redis.call('LPOP', queue)
  redis.call('HDEL', meta, 'head', 'head_tries', 'head_shown', 'head_fence')
end
for _, key in ipairs({msgs, toks, meta}) do redis.call('EXPIRE', key, ttl) end
-- Nothing left, or the next turn waits for an earlier message still being queued (whose
-- enqueue then takes the lease): release it.
if redis.call('LLEN', queue) == 0 or waits_for_earlier() then
  redis.call('DEL', lease)
  return {'idle'}
end
redis.call('PEXPIRE', lease, lease_ms)
return {'next', 0, unpack(open_head(string.match(holder, '|(%d+)$')))}
"""
)

_ADOPT = (
    """
local msgs, toks, meta, queue, lease, fence = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local owner, lease_ms, budget, ttl, now = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local max_replays, polite, inbox = tonumber(ARGV[6]), ARGV[7] == '1', KEYS[7]
"""
    + _OPEN_HEAD
    + _TAKE_LEASE
    + _WAITS_FOR_EARLIER
    + """
-- Events acked longer ago than a lease and still not queued: their process died first.
-- They stay in the inbox until queueing takes them out; the new stamp keeps another scan
-- from replaying them again before a lease has passed, and a few failed replays end it.
local orphans, entries = {}, redis.call('HGETALL', KEYS[7])
for i = 1, #entries, 2 do
  local entry = cjson.decode(entries[i + 1])
  if entry.at < tonumber(now) - lease_ms / 1000 then
    entry.at, entry.replays = tonumber(now), (entry.replays or 0) + 1
    if entry.replays > max_replays then
      redis.call('HDEL', KEYS[7], entries[i])
    else
      redis.call('HSET', KEYS[7], entries[i], cjson.encode(entry))
      table.insert(orphans, entry.body)
    end
  end
end
if redis.call('EXISTS', lease) == 1 then return {'busy', redis.call('PTTL', lease), orphans} end
if redis.call('LLEN', queue) == 0 then
  -- events still in the inbox: look again when they would be due
  if redis.call('HLEN', KEYS[7]) > 0 then return {'busy', lease_ms, orphans} end
  return {'idle', 0, orphans}
end
if polite and waits_for_earlier() then return {'busy', lease_ms, orphans} end
local f = take_lease()
return {'lead', f, orphans, unpack(open_head(f))}
"""
)

_RENEW = """
local held = redis.call('GET', KEYS[1])
if held == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if not held then return 0 end
return -1
"""

_SHOWN = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] or redis.call('HGET', KEYS[2], 'head') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[2], 'head_shown', ARGV[3])
return 1
"""

_HAND_OVER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) return 1 end
return 0
"""

_FORGET_IF_UNCHANGED = """
if tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1])) == tonumber(ARGV[2]) then redis.call('ZREM', KEYS[1], ARGV[1]) return 1 end
return 0
"""


def park_ms(lease_ms: int) -> int:
    """How long a follow-up waits for its thread's first mention to be queued: long enough
    for a dead process's mention to be replayed (a lease, then a scan)."""
    return 2 * lease_ms + 1_000


@dataclass(frozen=True)
class Lease:
    conv_id: str
    owner: str
    fence: int

    @property
    def value(self) -> str:
        return f"{self.owner}|{self.fence}"


@dataclass
class Opened:
    """The queue's head turn, its user message in the history, ready for the model."""

    lease: Lease
    record: dict  # as given to `enqueue`
    meta: dict[str, str] = field(default_factory=dict)
    window: list[dict] = field(default_factory=list)
    length: int = 0  # messages in the whole history
    tries: int = 1  # 2 or more: an earlier holder died during this turn
    shown: str = ""  # Slack ts an earlier holder was showing this turn's answer in
    done: Step | None = None  # set once `close` ran for it

    @property
    def token(self) -> str:
        return self.record["token"]


@dataclass
class Step:
    """What a queue call left the caller with."""

    status: str  # lead | next (a turn is open) · queued | idle | busy | lost | duplicate | foreign
    opened: Opened | None = None
    retry_in_ms: int = 0  # busy: when the lease runs out, if nobody renews it
    orphans: list[str] = field(default_factory=list)  # adopt: acked events never queued


def new_record(message: dict, **fields: object) -> dict:
    """A queued turn: the user's message as it will be stored (with its cached `tokens`),
    plus whatever the bot needs to answer it in another process."""
    return {
        "token": uuid.uuid4().hex,
        "ts": str(message.get("ts", "")),  # Slack's ts: the queue keeps Slack's order
        "tokens": int(message["tokens"]),
        "message": json.dumps(message, separators=(",", ":")),
        **fields,
    }


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _step(reply: list, conv_id: str, owner: str, lease: Lease | None = None, *, adopt: bool = False) -> Step:
    status = _text(reply[0])
    orphans = [_text(body) for body in reply[2]] if adopt else []
    if status not in ("lead", "next"):
        return Step(status=status, retry_in_ms=int(reply[1]) if status == "busy" else 0, orphans=orphans)
    if status == "lead":
        lease = Lease(conv_id, owner, int(reply[1]))
    raw, fields, window, length, tries, shown = reply[3:9] if adopt else reply[2:8]
    return Step(
        orphans=orphans,
        status=status,
        opened=Opened(
            lease=lease,
            record=json.loads(raw),
            meta=_decode_meta(fields),
            window=json.loads(window),
            length=int(length),
            tries=int(tries),
            shown=_text(shown),
        ),
    )


def _conv_keys(store: Store, conv_id: str) -> list[str]:
    k = keys.conversation(store.prefix, conv_id)
    return [k.msgs, k.toks, k.meta, k.queue, k.lease, k.fence]


async def enqueue(
    store: Store,
    conv_id: str,
    record: dict,
    *,
    owner: str,
    markers: list[str],
    require_existing: bool,
    budget: int,
    ttl: int,
    lease_ms: int = LEASE_MS,
    index: bool = True,
) -> Step:
    """Queue a turn; `lead` means the caller now holds the lease and the turn is open.

    `markers` dedupe Slack retries (event id) and double deliveries (channel and ts); the
    first one names the event in the inbox, which it leaves (see `accept`). A new holder
    puts the conversation on the recovery index, so its death is noticed, unless
    `accept` did already (`index=False`).
    """
    k = keys.conversation(store.prefix, conv_id)
    event_key = markers[0]
    script = store.redis.register_script(_ENQUEUE)
    seen = [keys.seen(store.prefix, conv_id, m) for m in dict.fromkeys(markers)]
    now = time.time()
    reply = await script(
        keys=_conv_keys(store, conv_id) + [k.parked, k.inbox] + seen,
        args=[
            json.dumps(record, separators=(",", ":")),
            record["token"],
            "1" if require_existing else "0",
            owner,
            lease_ms,
            keys.DEDUPE_TTL_SECONDS,
            int(budget),
            int(ttl),
            f"{now:.3f}",
            record["ts"],
            park_ms(lease_ms),
            event_key,
        ],
    )
    step = _step(reply, conv_id, owner)
    if step.status == "lead" and index:
        # Only a new holder indexes: a queued turn is the current holder's, and its entry
        # stays until a scan finds the queue empty. (A process killed between the script
        # and this ZADD leaves its turn to the thread's next message; the gap is one
        # round trip.)
        await store.redis.zadd(keys.open_turns(store.prefix), {conv_id: now + lease_ms / 1000})
    return step


async def close(
    store: Store,
    opened: Opened,
    answer: dict | None,
    *,
    usage: dict[str, int] | None,
    meta: dict[str, str] | None,
    ttl: int,
    budget: int,
    lease_ms: int = LEASE_MS,
    also: list[tuple[str, list[str], list[Any]]] | None = None,
) -> Step:
    """Record the answer and pop the turn; `next` opens the following turn (same lease),
    `idle` released the lease, `lost` means another process holds it now. `also`: scripts
    sent in the same round trip (the turn's usage counters, core/usage.py)."""
    fields = {
        "usage": {name: int(value) for name, value in (usage or {}).items()},
        "meta": {"updated": f"{time.time():.3f}", **(meta or {})},
    }
    lease = opened.lease
    (reply, *_) = await scripts_together(
        store,
        [
            (
                _CLOSE,
                _conv_keys(store, lease.conv_id)[:5] + [keys.conversation(store.prefix, lease.conv_id).inbox],
                [
                    lease.value,
                    opened.token,
                    json.dumps(answer, separators=(",", ":")) if answer is not None else "",
                    int(answer["tokens"]) if answer is not None else 0,
                    json.dumps(fields),
                    int(ttl),
                    lease_ms,
                    int(budget),
                    f"{time.time():.3f}",
                ],
            ),
            *(also or []),
        ],
    )
    opened.done = _step(reply, lease.conv_id, lease.owner, lease)
    return opened.done


async def adopt(
    store: Store,
    conv_id: str,
    *,
    owner: str,
    budget: int,
    ttl: int,
    lease_ms: int = LEASE_MS,
    polite: bool = False,
) -> Step:
    """Take a queue whose lease ran out (its holder died or handed over). `polite`: not
    while an earlier message is still being queued (its enqueue takes the lease)."""
    script = store.redis.register_script(_ADOPT)
    reply = await script(
        keys=_conv_keys(store, conv_id) + [keys.conversation(store.prefix, conv_id).inbox],
        args=[
            owner,
            lease_ms,
            int(budget),
            int(ttl),
            f"{time.time():.3f}",
            MAX_TRIES,
            "1" if polite else "0",
        ],
    )
    return _step(reply, conv_id, owner, adopt=True)


async def accept(store: Store, events: list[tuple[str, str, str, str]], *, lease_ms: int = LEASE_MS) -> None:
    """Keep events (conv id, event key, Slack ts, body) before Slack is told they arrived, so a
    process that dies between its ack and `enqueue` loses nothing: a recovery scan finds
    them in their conversation's inbox (`adopt`).

    One pipeline for the lot (a burst's events share it): each inbox entry and the
    recovery index. `enqueue` removes an entry as it queues its event (or finds it a
    duplicate, or not ours). Until then, a later message of the same thread queued by
    another process waits for it, so turns start in Slack's order.
    """
    now = time.time()
    async with store.redis.pipeline(transaction=False) as pipe:
        for conv_id, event_key, ts, body in events:
            entry = json.dumps({"at": now, "ts": ts, "body": body}, separators=(",", ":"))
            inbox = keys.conversation(store.prefix, conv_id).inbox
            pipe.hset(inbox, event_key, entry)
            pipe.expire(inbox, keys.DEDUPE_TTL_SECONDS)
        pipe.zadd(keys.open_turns(store.prefix), {conv_id: now + lease_ms / 1000 for conv_id, *_ in events})
        await pipe.execute()


async def done(store: Store, conv_id: str, event_key: str) -> None:
    """An accepted event that didn't become a turn (a thread command) leaves the inbox."""
    await store.redis.hdel(keys.conversation(store.prefix, conv_id).inbox, event_key)


async def renew(store: Store, lease: Lease, lease_ms: int = LEASE_MS) -> int:
    """Extend the lease: 1 done, 0 no lease (released by our own last close, or expired and
    not yet adopted), -1 another process holds it now."""
    script = store.redis.register_script(_RENEW)
    key = keys.conversation(store.prefix, lease.conv_id).lease
    return int(await script(keys=[key], args=[lease.value, lease_ms]))


async def mark_shown(store: Store, opened: Opened, slack_ts: str) -> bool:
    """Remember which Slack message shows this turn's answer, for whoever takes over."""
    k = keys.conversation(store.prefix, opened.lease.conv_id)
    script = store.redis.register_script(_SHOWN)
    return bool(await script(keys=[k.lease, k.meta], args=[opened.lease.value, opened.token, slack_ts]))


async def hand_over(store: Store, lease: Lease) -> None:
    """Give the queue up now (shutdown): the next recovery scan adopts it at once."""
    script = store.redis.register_script(_HAND_OVER)
    if await script(keys=[keys.conversation(store.prefix, lease.conv_id).lease], args=[lease.value]):
        await store.redis.zadd(keys.open_turns(store.prefix), {lease.conv_id: 0})


async def due(store: Store, *, limit: int = 200) -> list[tuple[str, float]]:
    """Conversations on the recovery index whose lease may have run out by now."""
    found = await store.redis.zrangebyscore(
        keys.open_turns(store.prefix), "-inf", time.time(), start=0, num=limit, withscores=True
    )
    return [(_text(member), score) for member, score in found]


async def look_later(store: Store, conv_id: str, in_ms: int) -> None:
    """A live holder still has it: look again when its lease would run out."""
    await store.redis.zadd(keys.open_turns(store.prefix), {conv_id: time.time() + in_ms / 1000}, xx=True)


async def forget(store: Store, conv_id: str, score: float) -> None:
    """Drop an idle conversation from the index, unless a new turn was queued meanwhile
    (which moved its score)."""
    script = store.redis.register_script(_FORGET_IF_UNCHANGED)
    await script(keys=[keys.open_turns(store.prefix)], args=[conv_id, repr(score)])


async def take_scan(store: Store, owner: str, interval_ms: int) -> bool:
    """One process scans per interval; the others skip (the index is shared)."""
    return bool(await store.redis.set(keys.recovery_scan(store.prefix), owner, nx=True, px=interval_ms))
