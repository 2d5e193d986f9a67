"""Shared token buckets: one budget however many processes take from it."""

from __future__ import annotations

import asyncio

from core import rate_budget
from core.rate_budget import Limit

FAST = Limit(per_minute=600, burst=3)  # 10 a second, so refills take 100 ms


async def test_a_burst_is_granted_then_calls_wait_for_the_refill(store):
    waits = [await rate_budget.take(store, "T1", {"m": FAST}) for _ in range(4)]
    assert waits[:3] == [0, 0, 0] and 0 < waits[3] <= 100
    await asyncio.sleep(waits[3] / 1000 + 0.02)
    assert await rate_budget.take(store, "T1", {"m": FAST}) == 0


async def test_two_clients_share_one_bucket_and_workspaces_have_their_own(store):
    granted = await asyncio.gather(*(rate_budget.take(store, "T1", {"m": FAST}) for _ in range(10)))
    assert granted.count(0) == 3
    assert await rate_budget.take(store, "T2", {"m": FAST}) == 0


async def test_a_call_must_fit_every_bucket_and_a_refused_one_takes_from_none(store):
    channel, workspace = Limit(600, 1), Limit(600, 3)
    assert await rate_budget.take(store, "T1", {"C1": channel, "all": workspace}) == 0
    assert await rate_budget.take(store, "T1", {"C1": channel, "all": workspace}) > 0  # C1 is empty
    assert await rate_budget.take(store, "T1", {"C2": channel, "all": workspace}) == 0  # all had 2
    assert await rate_budget.take(store, "T1", {"C3": channel, "all": workspace}) == 0


async def test_optional_calls_leave_a_reserve_for_required_ones(store):
    assert await rate_budget.take(store, "T1", {"m": FAST}, keep=2) == 0
    assert await rate_budget.take(store, "T1", {"m": FAST}, keep=2) > 0  # would leave only 1
    assert await rate_budget.take(store, "T1", {"m": FAST}) == 0
