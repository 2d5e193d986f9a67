"""Token usage and estimated cost per UTC day, and the limits that read them.

Every answer adds its prompt, completion and cached-prompt tokens, its estimated cost and
one turn to counters by day for the workspace, its channel, persona, user and model. The
write travels in the same round trip as the turn's close (`record_call`, run through
`store.scripts_together`), so counting costs no extra trip. Costs are integers in
micro-dollars: a token priced at $X per million costs X micro-dollars, so the script adds
`tokens * price` and rounds once.

Prices are USD per 1M tokens from `PRICES` (OpenAI's standard tier, checked 2026-11), and
admins override them per model with `/usage price`; the override lives in Redis, so the
script reads it where it counts and every process prices alike. A model with no price
counts its tokens at no cost, and reports say it is unpriced rather than guess.

Limits are optional: a monthly budget for the workspace and a per-user cap on turns per
hour. `admit` checks and counts both in one script; with neither set it is never called.
"""

from __future__ import annotations

import json
import logging
import math
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from redis.exceptions import RedisError

from core import keys
from core.store import Store, scripts_together
from core.tokens import base_model

log = logging.getLogger(__name__)

DAY_TTL_SECONDS = 100 * 86400  # reports look back 30 days; a month's budget needs 31
MONTH_TTL_SECONDS = 400 * 86400
COUNTED_TTL_SECONDS = 86400  # a retried close comes within seconds; a day is generous
LIMITS_CACHE_SECONDS = 10.0
DIMENSIONS = ("all", "channel", "persona", "user", "model")


@dataclass(frozen=True)
class Price:
    """USD per 1M tokens."""

    input: float
    cached: float
    output: float

    def to_json(self) -> str:
        return json.dumps([self.input, self.cached, self.output])


# prefix -> price; the longest prefix wins, like core/tokens.py's model table. Fine-tuned
# models are billed at their own rates, listed under "ft:<base>".
PRICES: dict[str, Price] = {
    "gpt-5": Price(1.25, 0.125, 10.0),
    "gpt-5-mini": Price(0.25, 0.025, 2.0),
    "gpt-5-nano": Price(0.05, 0.005, 0.40),
    "gpt-5-chat-latest": Price(1.25, 0.125, 10.0),
    "gpt-5.1": Price(1.25, 0.125, 10.0),
    "gpt-5.2": Price(1.75, 0.175, 14.0),
    "gpt-5.2-pro": Price(21.0, 21.0, 168.0),
    "gpt-4.1": Price(2.0, 0.50, 8.0),
    "gpt-4.1-mini": Price(0.40, 0.10, 1.60),
    "gpt-4.1-nano": Price(0.10, 0.025, 0.40),
    "gpt-4o": Price(2.50, 1.25, 10.0),
    "gpt-4o-mini": Price(0.15, 0.075, 0.60),
    "o1": Price(15.0, 7.50, 60.0),
    "o3": Price(2.0, 0.50, 8.0),
    "o3-mini": Price(1.10, 0.55, 4.40),
    "o4-mini": Price(1.10, 0.275, 4.40),
    "gpt-4-turbo": Price(10.0, 10.0, 30.0),
    "gpt-4": Price(30.0, 30.0, 60.0),
    "gpt-3.5-turbo": Price(0.50, 0.50, 1.50),
    "ft:gpt-4.1": Price(3.0, 0.75, 12.0),
    "ft:gpt-4.1-mini": Price(0.80, 0.20, 3.20),
    "ft:gpt-4.1-nano": Price(0.20, 0.05, 0.80),
    "ft:gpt-4o": Price(3.75, 1.875, 15.0),
    "ft:gpt-4o-mini": Price(0.30, 0.15, 1.20),
}


def default_price(model: str) -> Price | None:
    """The table's price for `model` (dated names and fine-tunes included), or None."""
    name = f"ft:{base_model(model)}" if model.startswith("ft:") else model
    match = max((p for p in PRICES if name == p or name.startswith(p + "-")), key=len, default=None)
    return PRICES[match] if match else None


def price_names(model: str) -> list[str]:
    """The names an admin's price for `model` may be under, most specific first: the
    name itself, then shorter dash-prefixes (`gpt-4.1-mini` covers
    `gpt-4.1-mini-2025-04-14`). A fine-tuned model looks under `ft:<base>` names only:
    it is billed at its own rates, not its base's."""
    base = f"ft:{base_model(model)}" if model.startswith("ft:") else model
    parts = base.split("-")
    names = [model] + ["-".join(parts[:i]) for i in range(len(parts), 0, -1)]
    return list(dict.fromkeys(n for n in names if n and n != "ft:gpt"))


def check_price(values: Iterable[str]) -> Price:
    """`/usage price <model> <input> <cached> <output>`: three non-negative numbers."""
    values = list(values)
    try:
        numbers = [float(v.lstrip("$")) for v in values]
    except ValueError:
        numbers = []
    if len(numbers) != 3 or any(not math.isfinite(n) or n < 0 or n > 10_000 for n in numbers):
        raise ValueError(
            "give three prices in USD per 1M tokens: input, cached input, output "
            "(e.g. `/usage price gpt-4.1-mini 0.40 0.10 1.60`)."
        )
    return Price(*numbers)


def day_of(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d")


def month_of(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m")


@dataclass(frozen=True)
class Spend:
    """What one answer used, and who and where it was for."""

    team: str
    channel: str
    persona: str
    user: str
    model: str
    prompt: int
    completion: int
    cached: int = 0
    marker: str = ""  # unique per answer (its turn token): a retried write counts once


_RECORD = """
if ARGV[2] ~= '' and not redis.call('SET', KEYS[9], '1', 'NX', 'EX', ARGV[5]) then return -1 end
local f = cjson.decode(ARGV[1])
local price = f.price
local overrides = redis.call('HMGET', KEYS[8], unpack(f.names))
for _, override in ipairs(overrides) do
  if override then price = cjson.decode(override) break end
end
local cost = 0
if price and price ~= cjson.null then
  cost = math.floor((f.p - f.k) * price[1] + f.k * price[2] + f.c * price[3] + 0.5)
end
local counts = {p = f.p, c = f.c, k = f.k, ['$'] = cost, n = 1, t = f.p + f.c}
for metric, value in pairs(counts) do
  if value ~= 0 then
    redis.call('HINCRBY', KEYS[1], metric, value)
    redis.call('HINCRBY', KEYS[6], metric, value)
  end
end
for i, id in ipairs(f.ids) do
  for metric, value in pairs(counts) do
    if value ~= 0 then redis.call('HINCRBY', KEYS[1 + i], id .. '|' .. metric, value) end
  end
end
for metric, value in pairs(counts) do
  if value ~= 0 then redis.call('HINCRBY', KEYS[7], f.ids[3] .. '|' .. metric, value) end
end
for i = 1, 5 do redis.call('EXPIRE', KEYS[i], ARGV[3]) end
for i = 6, 7 do redis.call('EXPIRE', KEYS[i], ARGV[4]) end
return cost
"""


def record_call(store: Store, spend: Spend, *, now: float | None = None) -> tuple[str, list[str], list[Any]]:
    """The counting script and its arguments, for `store.scripts_together` (it returns
    the answer's cost in micro-dollars, or -1 if it was counted before).

    A day's counters sit in one hash per dimension: the workspace's totals (prompt,
    completion and cached tokens, cost, turns, all tokens) and, by channel, persona,
    person and model, `<id>|<metric>` for the same. A reader fetches only the dimensions
    it shows (App Home: channel and persona), and a person's own counts are six fields.
    """
    now = time.time() if now is None else now
    ws = keys.workspace(store.prefix, spend.team)
    price = default_price(spend.model)
    fields = {
        "ids": [spend.channel, spend.persona, spend.user, spend.model],
        "p": max(0, int(spend.prompt)),
        "c": max(0, int(spend.completion)),
        "k": max(0, min(int(spend.cached), int(spend.prompt))),
        "names": price_names(spend.model),
        "price": [price.input, price.cached, price.output] if price else None,
    }
    day, month = day_of(now), month_of(now)
    return (
        _RECORD,
        [
            *(keys.usage_day(store.prefix, spend.team, day, dim) for dim in DIMENSIONS),
            keys.usage_month(store.prefix, spend.team, month),
            keys.usage_month(store.prefix, spend.team, month, "user"),
            ws.prices,
            keys.usage_counted(store.prefix, spend.team, spend.marker or "-"),
        ],
        [json.dumps(fields), spend.marker, DAY_TTL_SECONDS, MONTH_TTL_SECONDS, COUNTED_TTL_SECONDS],
    )


async def record(store: Store, spend: Spend, *, now: float | None = None) -> int:
    """Count one answer on its own (a model call that closes no turn)."""
    source, call_keys, args = record_call(store, spend, now=now)
    return int(await store.redis.register_script(source)(keys=call_keys, args=args))


async def record_calls(
    store: Store, *, team: str, channel: str, user: str, purpose: str, spent: dict[str, dict[str, int]]
) -> None:
    """Count model calls that answer no turn (an admin's evaluation or prompt
    optimization), under `purpose` in place of a persona; `spent` is model -> usage."""
    calls = [
        record_call(
            store,
            Spend(
                team=team,
                channel=channel,
                persona=purpose,
                user=user,
                model=model,
                prompt=used.get("prompt_tokens", 0),
                completion=used.get("completion_tokens", 0),
                cached=used.get("cached_tokens", 0),
                marker=uuid.uuid4().hex,
            ),
        )
        for model, used in spent.items()
        if used
    ]
    if not calls:
        return
    try:
        await scripts_together(store, calls)
    except RedisError as exc:  # the work is done and shown; its count is best effort
        log.warning("Couldn't count %s's usage: %s", purpose, type(exc).__name__)


@dataclass
class Totals:
    prompt: int = 0
    completion: int = 0
    cached: int = 0
    cost_micro: int = 0
    turns: int = 0
    tokens: int = 0  # prompt + completion

    @property
    def cost(self) -> float:
        return self.cost_micro / 1_000_000

    def plus(self, other: Totals) -> Totals:
        return Totals(
            self.prompt + other.prompt,
            self.completion + other.completion,
            self.cached + other.cached,
            self.cost_micro + other.cost_micro,
            self.turns + other.turns,
            self.tokens + other.tokens,
        )


_METRICS = {
    b"p": "prompt",
    b"c": "completion",
    b"k": "cached",
    b"$": "cost_micro",
    b"n": "turns",
    b"t": "tokens",
}
_ALL = (b"p", b"c", b"k", b"$", b"n", b"t")  # in Totals' field order
_INDEX = {m: i for i, m in enumerate(_ALL)}


def totals_of(raw: dict) -> Totals:
    """Totals from a workspace hash (`metric -> count`)."""
    values = {}
    for k, v in raw.items():
        name = _METRICS.get(k if isinstance(k, bytes) else k.encode())
        if name:
            values[name] = int(v)
    return Totals(**values)


def _listed(values: list) -> Totals:
    """Totals from an HMGET of `<id>|<metric>` for each of _ALL."""
    return Totals(*(int(v) if v is not None else 0 for v in values))


@dataclass
class Report:
    """Usage over some days: per day, and per channel, persona, person and model."""

    days: list[tuple[str, Totals]] = field(default_factory=list)  # oldest first
    by: dict[str, dict[str, Totals]] = field(default_factory=dict)  # dimension -> id -> totals
    total: Totals = field(default_factory=Totals)

    def top(self, dimension: str, n: int = 5) -> list[tuple[str, Totals]]:
        rows = self.by.get(dimension, {})
        return sorted(rows.items(), key=lambda kv: (-kv[1].cost_micro, -kv[1].tokens, kv[0]))[:n]

    @property
    def unpriced(self) -> list[str]:
        """Models that used tokens but have no price (their cost shows as $0)."""
        return sorted(m for m, t in self.by.get("model", {}).items() if t.tokens and not t.cost_micro)


def add_dimension(sums: dict[bytes, int], raw: dict) -> None:
    """Add one day's `<id>|<metric>` hash of a dimension to `sums`. App Home reads 30 days
    of channels and personas (thousands of fields): one dict update per field here, and
    the few hundred distinct names are split once, in `rows_of`."""
    for name, value in raw.items():
        sums[name] = sums.get(name, 0) + int(value)


def rows_of(sums: dict[bytes | str, int]) -> dict[str, Totals]:
    rows: dict[bytes, list[int]] = {}
    for name, value in sums.items():
        name = name if isinstance(name, bytes) else name.encode()
        ident, _, metric = name.rpartition(b"|")
        i = _INDEX.get(metric)
        if i is not None:
            rows.setdefault(ident, [0] * len(_ALL))[i] += value
    return {ident.decode(): Totals(*row) for ident, row in rows.items()}


def last_days(now: float, n: int) -> list[str]:
    today = datetime.fromtimestamp(now, UTC).date()
    return [(today - timedelta(days=i)).isoformat() for i in range(n - 1, -1, -1)]


@dataclass(frozen=True)
class ReportQuery:
    """The reads of one report, queued on a pipeline with others (App Home's one round
    trip) and parsed from their results. Every key is under the workspace's hash tag.

    `user`: only that person's counts (what a member may see); else the workspace's, with
    rows by `dims`."""

    team: str
    days: tuple[str, ...]
    dims: tuple[str, ...] = ("channel", "persona", "user", "model")
    user: str | None = None

    @classmethod
    def last(cls, team: str, *, days: int = 30, now: float | None = None, **kw: Any) -> ReportQuery:
        return cls(team, tuple(last_days(time.time() if now is None else now, days)), **kw)

    @property
    def size(self) -> int:
        return len(self.days) * (1 if self.user is not None else 1 + len(self.dims))

    def queue(self, pipe: Any, store: Store) -> None:
        for day in self.days:
            if self.user is not None:
                key = keys.usage_day(store.prefix, self.team, day, "user")
                pipe.hmget(key, *(f"{self.user}|{m.decode()}" for m in _ALL))
                continue
            pipe.hgetall(keys.usage_day(store.prefix, self.team, day))
            for dim in self.dims:
                pipe.hgetall(keys.usage_day(store.prefix, self.team, day, dim))

    def parse(self, results: list) -> Report:
        report = Report()
        sums: dict[str, dict[bytes, int]] = {dim: {} for dim in self.dims}
        it = iter(results)
        for day in self.days:
            totals = _listed(next(it)) if self.user is not None else totals_of(next(it))
            if self.user is None:
                for dim in self.dims:
                    add_dimension(sums[dim], next(it))
            report.days.append((day, totals))
            report.total = report.total.plus(totals)
        if self.user is None:
            report.by = {dim: rows_of(sums[dim]) for dim in self.dims}
        return report


async def report(
    store: Store, team: str, *, days: int = 30, user: str | None = None, now: float | None = None
) -> Report:
    query = ReportQuery.last(team, days=days, now=now, user=user)
    pipe = store.redis.pipeline(transaction=False)
    query.queue(pipe, store)
    return query.parse(await pipe.execute())


def month_queue(
    pipe: Any, store: Store, team: str, *, user: str | None = None, now: float | None = None
) -> None:
    """Queue the read of this UTC month's totals, the workspace's or one person's."""
    month = month_of(time.time() if now is None else now)
    if user is None:
        pipe.hgetall(keys.usage_month(store.prefix, team, month))
    else:
        pipe.hmget(
            keys.usage_month(store.prefix, team, month, "user"), *(f"{user}|{m.decode()}" for m in _ALL)
        )


def month_parse(result: Any, *, user: str | None = None) -> Totals:
    return _listed(result) if user is not None else totals_of(result)


async def month_so_far(
    store: Store, team: str, *, user: str | None = None, now: float | None = None
) -> Totals:
    """This UTC month's totals for the workspace, or for one person."""
    pipe = store.redis.pipeline(transaction=False)
    month_queue(pipe, store, team, user=user, now=now)
    (result,) = await pipe.execute()
    return month_parse(result, user=user)


# ---- prices ---------------------------------------------------------------------------


async def set_price(store: Store, team: str, model: str, price: Price | None) -> None:
    """An admin's price for `model` (None: back to the table's)."""
    ws = keys.workspace(store.prefix, team)
    if price is None:
        await store.redis.hdel(ws.prices, model)
    else:
        await store.redis.hset(ws.prices, model, price.to_json())


async def price_overrides(store: Store, team: str) -> dict[str, Price]:
    raw = await store.redis.hgetall(keys.workspace(store.prefix, team).prices)
    return {k.decode(): Price(*json.loads(v)) for k, v in raw.items()}


# ---- limits ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    """A workspace's limits; 0 means none."""

    budget_usd: float = 0.0  # per UTC month, estimated cost
    user_turns_per_hour: int = 0

    @property
    def any(self) -> bool:
        return self.budget_usd > 0 or self.user_turns_per_hour > 0


# Per process on purpose: a copy of the workspace's limits at most LIMITS_CACHE_SECONDS old,
# so a turn with no limits set costs no round trip. An admin's change reaches the process
# that made it at once and the others within that time.
_limits_cache: dict[tuple[str, str], tuple[float, Limits]] = {}
_BUDGET_FIELD, _USER_FIELD = "budget_usd", "user_turns_per_hour"


async def limits(store: Store, team: str, defaults: Limits) -> Limits:
    """The workspace's limits: an admin's setting, else the deployment's default."""
    cached = _limits_cache.get((store.prefix, team))
    if cached and time.monotonic() - cached[0] < LIMITS_CACHE_SECONDS:
        return cached[1]
    budget, per_user = await store.redis.hmget(
        keys.workspace(store.prefix, team).settings, _BUDGET_FIELD, _USER_FIELD
    )
    current = limits_from({_BUDGET_FIELD.encode(): budget, _USER_FIELD.encode(): per_user}, defaults)
    _limits_cache[(store.prefix, team)] = (time.monotonic(), current)
    if len(_limits_cache) > 10_000:
        _limits_cache.pop(next(iter(_limits_cache)))
    return current


def limits_from(settings: dict, defaults: Limits) -> Limits:
    """Limits from the workspace's settings hash (raw), the defaults where unset."""
    budget, per_user = settings.get(_BUDGET_FIELD.encode()), settings.get(_USER_FIELD.encode())
    return Limits(
        budget_usd=float(budget) if budget is not None else defaults.budget_usd,
        user_turns_per_hour=int(per_user) if per_user is not None else defaults.user_turns_per_hour,
    )


async def set_limits(
    store: Store, team: str, *, budget_usd: float | None = None, user_turns_per_hour: int | None = None
) -> None:
    """Set either limit for the workspace (0 turns it off, overriding the default)."""
    values: dict[str, str] = {}
    if budget_usd is not None:
        values[_BUDGET_FIELD] = repr(float(budget_usd))
    if user_turns_per_hour is not None:
        values[_USER_FIELD] = str(int(user_turns_per_hour))
    if values:
        await store.redis.hset(keys.workspace(store.prefix, team).settings, mapping=values)
    _limits_cache.pop((store.prefix, team), None)


@dataclass(frozen=True)
class Refusal:
    """A limit stopped a turn: which, how far, until when, and whether admins must hear."""

    what: str  # "budget" | "user"
    used: float  # dollars spent this month, or turns this hour
    limit: float
    until: datetime
    tell_admins: bool  # the first of its kind this month (budget) or today (any user's cap)


_ADMIT = """
local budget, per_user = tonumber(ARGV[1]), tonumber(ARGV[2])
if budget > 0 then
  local spent = tonumber(redis.call('HGET', KEYS[1], '$') or '0')
  if spent >= budget then
    local first = redis.call('SET', KEYS[3], '1', 'NX', 'EX', ARGV[3])
    return {'budget', tostring(spent), first and 1 or 0}
  end
end
if per_user > 0 then
  local n = tonumber(redis.call('GET', KEYS[2]) or '0')
  if n >= per_user then
    local first = redis.call('SET', KEYS[4], '1', 'NX', 'EX', ARGV[5])
    return {'user', tostring(n), first and 1 or 0}
  end
  redis.call('INCR', KEYS[2])
  redis.call('EXPIRE', KEYS[2], ARGV[4])
end
return {'ok'}
"""


async def admit(
    store: Store, team: str, user: str, current: Limits, *, now: float | None = None
) -> Refusal | None:
    """None if `user` may start a turn now (and it is counted against their hourly cap);
    else what was hit. One round trip, only when a limit is set."""
    if not current.any:
        return None
    now = time.time() if now is None else now
    moment = datetime.fromtimestamp(now, UTC)
    month, hour = month_of(now), moment.strftime("%Y-%m-%dT%H")
    next_month = (moment.replace(day=28) + timedelta(days=4)).replace(
        day=1, hour=0, minute=0, second=0, microsecond=0
    )
    next_hour = moment.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    reply = await store.redis.register_script(_ADMIT)(
        keys=[
            keys.usage_month(store.prefix, team, month),
            keys.user_turns(store.prefix, team, user, hour),
            # with the amount: an admin who raises the budget hears again if it's reached
            keys.limit_notice(store.prefix, team, f"budget:{month}:{current.budget_usd:g}"),
            keys.limit_notice(store.prefix, team, f"user:{day_of(now)}"),
        ],
        args=[
            int(current.budget_usd * 1_000_000),
            int(current.user_turns_per_hour),
            40 * 86400,
            3700,
            2 * 86400,
        ],
    )
    kind = reply[0].decode() if isinstance(reply[0], bytes) else reply[0]
    if kind == "ok":
        return None
    used = float(reply[1].decode() if isinstance(reply[1], bytes) else reply[1])
    if kind == "budget":
        return Refusal("budget", used / 1_000_000, current.budget_usd, next_month, bool(reply[2]))
    return Refusal("user", used, current.user_turns_per_hour, next_hour, bool(reply[2]))
