"""Usage counters, prices and limits, on Valkey, Redis 7 and the cluster."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from redis.exceptions import ResponseError

from core import store as store_mod
from core import usage

NOV_26 = datetime(2026, 11, 26, 14, 30, tzinfo=UTC).timestamp()


def _spend(**kw) -> usage.Spend:
    fields = dict(
        team="T1",
        channel="C1",
        persona="engineer",
        user="U1",
        model="gpt-4.1-mini",
        prompt=1_000,
        completion=500,
        cached=200,
        marker="turn-1",
    )
    fields.update(kw)
    return usage.Spend(**fields)


async def test_an_answer_is_counted_by_day_for_each_dimension_and_priced_from_the_table(store):
    cost = await usage.record(store, _spend(), now=NOV_26)
    # gpt-4.1-mini: 800 uncached x 0.40 + 200 cached x 0.10 + 500 out x 1.60 micro-dollars
    assert cost == 800 * 0.40 + 200 * 0.10 + 500 * 1.60 == 1140
    await usage.record(store, _spend(channel="C2", user="U2", marker="turn-2"), now=NOV_26)
    report = await usage.report(store, "T1", now=NOV_26)
    assert report.total.turns == 2 and report.total.prompt == 2_000 and report.total.cached == 400
    assert report.total.cost_micro == 2280
    assert report.days[-1][0] == "2026-11-26" and report.days[-1][1].turns == 2
    assert len(report.days) == 30 and report.days[0][1].turns == 0
    assert set(report.by["channel"]) == {"C1", "C2"}
    assert report.by["persona"]["engineer"].turns == 2
    model = report.by["model"]["gpt-4.1-mini"]
    assert (model.prompt, model.completion, model.cached, model.tokens) == (2_000, 1_000, 400, 3_000)
    mine = await usage.report(store, "T1", user="U2", now=NOV_26)
    assert mine.total.turns == 1 and mine.by == {}


async def test_a_retried_count_is_counted_once(store):
    assert await usage.record(store, _spend(), now=NOV_26) == 1140
    assert await usage.record(store, _spend(), now=NOV_26) == -1
    assert (await usage.report(store, "T1", now=NOV_26)).total.turns == 1


async def test_an_admins_price_wins_and_an_unknown_model_is_reported_unpriced(store):
    await usage.set_price(store, "T1", "gpt-4.1-mini", usage.Price(1.0, 1.0, 1.0))
    assert await usage.record(store, _spend(), now=NOV_26) == 1_500
    await usage.record(store, _spend(model="llama-local", marker="t2"), now=NOV_26)
    report = await usage.report(store, "T1", now=NOV_26)
    assert report.unpriced == ["llama-local"]
    assert await usage.price_overrides(store, "T1") == {"gpt-4.1-mini": usage.Price(1.0, 1.0, 1.0)}
    await usage.set_price(store, "T1", "gpt-4.1-mini", None)
    assert await usage.record(store, _spend(marker="t3"), now=NOV_26) == 1140


async def test_an_admins_price_covers_dated_names_but_not_fine_tunes_of_the_model(store):
    await usage.set_price(store, "T1", "gpt-4.1-mini", usage.Price(1.0, 1.0, 1.0))
    assert await usage.record(store, _spend(model="gpt-4.1-mini-2025-04-14"), now=NOV_26) == 1_500
    tuned = "ft:gpt-4.1-mini-2025-04-14:acme::x1"
    assert await usage.record(store, _spend(model=tuned, marker="t2"), now=NOV_26) != 1_500
    await usage.set_price(store, "T1", "ft:gpt-4.1-mini", usage.Price(2.0, 2.0, 2.0))
    assert await usage.record(store, _spend(model=tuned, marker="t3"), now=NOV_26) == 3_000
    assert usage.price_names("gpt-4.1-mini-2025-04-14")[:2] == [
        "gpt-4.1-mini-2025-04-14",
        "gpt-4.1-mini-2025-04",
    ]


def test_fine_tuned_and_dated_models_find_their_price():
    assert usage.default_price("ft:gpt-4.1-mini-2025-04-14:acme::abc") == usage.PRICES["ft:gpt-4.1-mini"]
    assert usage.default_price("gpt-4o-mini-2024-07-18") == usage.PRICES["gpt-4o-mini"]
    assert usage.default_price("gpt-5.2-pro") == usage.PRICES["gpt-5.2-pro"]
    assert usage.default_price("mystery") is None
    with pytest.raises(ValueError, match="three prices"):
        usage.check_price(["1", "x", "2"])
    with pytest.raises(ValueError):
        usage.check_price(["1", "-1", "2"])
    assert usage.check_price(["$0.4", "0.1", "1.6"]) == usage.Price(0.4, 0.1, 1.6)


async def test_the_monthly_budget_stops_turns_until_next_month_and_tells_admins_once(store):
    limits = usage.Limits(budget_usd=0.002)
    assert await usage.admit(store, "T1", "U1", limits, now=NOV_26) is None
    await usage.record(store, _spend(), now=NOV_26)  # $0.00114
    assert await usage.admit(store, "T1", "U1", limits, now=NOV_26) is None
    await usage.record(store, _spend(marker="turn-2"), now=NOV_26)  # $0.00228 in all
    refused = await usage.admit(store, "T1", "U2", limits, now=NOV_26)
    assert refused is not None and refused.what == "budget" and refused.tell_admins
    assert refused.used == pytest.approx(0.00228) and refused.limit == 0.002
    assert refused.until == datetime(2026, 12, 1, tzinfo=UTC)
    again = await usage.admit(store, "T1", "U1", limits, now=NOV_26 + 60)
    assert again is not None and not again.tell_admins
    december = datetime(2026, 12, 1, 0, 0, 1, tzinfo=UTC).timestamp()
    assert await usage.admit(store, "T1", "U1", limits, now=december) is None


async def test_the_per_user_limit_counts_each_users_turns_per_hour(store):
    limits = usage.Limits(user_turns_per_hour=2)
    for _ in range(2):
        assert await usage.admit(store, "T1", "U1", limits, now=NOV_26) is None
    refused = await usage.admit(store, "T1", "U1", limits, now=NOV_26)
    assert refused is not None and refused.what == "user" and refused.used == 2 and refused.tell_admins
    assert refused.until == datetime(2026, 11, 26, 15, tzinfo=UTC)
    assert not (await usage.admit(store, "T1", "U1", limits, now=NOV_26)).tell_admins
    assert await usage.admit(store, "T1", "U2", limits, now=NOV_26) is None  # others are not held
    assert await usage.admit(store, "T1", "U1", limits, now=NOV_26 + 3600) is None


async def test_limits_set_by_an_admin_override_the_deployments_defaults(store):
    defaults = usage.Limits(budget_usd=100.0, user_turns_per_hour=30)
    assert await usage.limits(store, "T9", defaults) == defaults
    await usage.set_limits(store, "T9", user_turns_per_hour=0)
    assert await usage.limits(store, "T9", defaults) == usage.Limits(100.0, 0)
    await usage.set_limits(store, "T9", budget_usd=12.5)
    assert await usage.limits(store, "T9", defaults) == usage.Limits(12.5, 0)


async def test_a_usage_count_rides_with_another_script_and_survives_a_flushed_script_cache(store):
    """The close and its counters go in one round trip; a server that lost its scripts
    (restart, failover) still runs both, once."""
    echo = "return ARGV[1]"
    await store.redis.script_flush()
    call = usage.record_call(store, _spend(), now=NOV_26)
    results = await store_mod.scripts_together(store, [(echo, ["{T1}:x"], ["closed"]), call])
    assert results == [b"closed", 1140]
    trips = store_mod.RoundTrips.count
    call2 = usage.record_call(store, _spend(marker="turn-2"), now=NOV_26)
    await store_mod.scripts_together(store, [(echo, ["{T1}:x"], ["closed"]), call2])
    if not isinstance(store.redis, store_mod.Cluster):
        assert store_mod.RoundTrips.count - trips == 1
    assert (await usage.report(store, "T1", now=NOV_26)).total.turns == 2


async def test_a_failing_usage_write_never_fails_the_close_it_rides_with(store):
    broken = "return redis.call('INCR', KEYS[1])"  # the key holds a string: an error
    await store.redis.set(f"{store.prefix}:w:{{T1}}:broken", "text")
    results = await store_mod.scripts_together(
        store,
        [
            ("return ARGV[1]", ["{T1:C1:1.0}:x"], ["closed"]),
            (broken, [f"{store.prefix}:w:{{T1}}:broken"], []),
        ],
    )
    assert results == [b"closed", None]
    with pytest.raises(ResponseError):
        await store_mod.scripts_together(store, [(broken, [f"{store.prefix}:w:{{T1}}:broken"], [])])


async def test_a_report_ranks_by_cost_and_keeps_odd_ids_whole(store):
    await usage.record(store, _spend(channel="C1", marker="a"), now=NOV_26)
    await usage.record(store, _spend(channel="C2", prompt=10_000, marker="b"), now=NOV_26)
    await usage.record(store, _spend(model="ft:gpt-4o-mini:acme:x|y::1", marker="c"), now=NOV_26 - 86400)
    report = await usage.report(store, "T1", now=NOV_26)
    assert [c for c, _ in report.top("channel")] == ["C2", "C1"]
    assert "ft:gpt-4o-mini:acme:x|y::1" in report.by["model"]  # colons and bars in a name survive
    assert report.days[-2][1].turns == 1 and report.days[-1][1].turns == 2
    assert report.by["channel"]["C1"].turns == 2 and report.by["channel"]["C1"].tokens == 3_000
    month = await usage.month_so_far(store, "T1", now=NOV_26)
    assert month.turns == 3 and month.prompt == 12_000 and month.cached == 600
    mine = await usage.month_so_far(store, "T1", user="U1", now=NOV_26)
    assert mine.turns == 3 and mine.tokens == 13_500 and mine.cost_micro == month.cost_micro
    assert mine.cached == 600
