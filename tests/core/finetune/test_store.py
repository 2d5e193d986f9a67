"""Datasets in Redis: saving never overwrites silently, and staged copies never linger."""

from __future__ import annotations

import asyncio

import pytest

from core import keys
from core.finetune import store as ft


def _ds(name: str, n: int = 10, **kw) -> ft.Dataset:
    return ft.Dataset(name, n, 0, "test", "U1", audience="", **kw)


async def test_simultaneous_saves_of_different_names_both_land(store):
    """Each save WATCHes the shared index; one's write must not turn the other into a
    false "already exists"."""
    names = [f"set-{i}" for i in range(8)]
    await asyncio.gather(*(ft.save_dataset(store, "T1", _ds(n), f"{n}\n") for n in names))
    assert sorted(d.name for d in await ft.list_datasets(store, "T1")) == names


async def test_saving_over_a_name_raises_with_the_stored_dataset(store):
    await ft.save_dataset(store, "T1", _ds("a", 10), "old\n")
    with pytest.raises(ft.DatasetExists) as raised:
        await ft.save_dataset(store, "T1", _ds("a", 99), "new\n")
    assert raised.value.existing.examples == 10
    _, train, _ = await ft.load_dataset(store, "T1", "a")
    assert train == "old\n"


async def test_a_staged_dataset_replaces_the_old_one_all_or_nothing(store):
    await ft.save_dataset(store, "T1", _ds("a", 10), "old\n")
    token = await ft.stage_dataset(store, "T1", _ds("a", 20), "new\n", "")
    pending = await ft.take_pending(store, "T1", token)
    assert (await ft.commit_staged(store, "T1", token, pending)).examples == 20
    ds, train, _ = await ft.load_dataset(store, "T1", "a")
    assert (ds.examples, train) == (20, "new\n")
    assert await store.redis.ttl(keys.dataset(store.prefix, "T1", "a", "train")) == -1  # kept for good


async def test_an_expired_staged_copy_changes_nothing(store):
    await ft.save_dataset(store, "T1", _ds("a", 10), "old\n")
    token = await ft.stage_dataset(store, "T1", _ds("a", 20), "new\n", "")
    pending = await ft.take_pending(store, "T1", token)
    await ft.drop_staged(store, "T1", token)  # as if its hour ran out
    assert await ft.commit_staged(store, "T1", token, pending) is None
    ds, train, _ = await ft.load_dataset(store, "T1", "a")
    assert (ds.examples, train) == (10, "old\n")


async def test_keeping_the_old_dataset_drops_the_staged_copy(store):
    token = await ft.stage_dataset(store, "T1", _ds("a", 20), "new\n" * 1000, "")
    await ft.drop_staged(store, "T1", token)
    left = [k async for k in store.redis.scan_iter(match=f"{store.prefix}:*staged*")]
    assert left == []


async def test_the_refresh_lock_lets_one_refresh_at_a_time(store):
    async with ft.refresh_lock(store, "ftjob-1", "bot-a", 60_000) as first:
        assert first
        assert await store.redis.pttl(keys.finetune_refresh_lock(store.prefix, "ftjob-1")) > 59_000
        async with ft.refresh_lock(store, "ftjob-1", "bot-a", 60_000) as second:  # same process too
            assert not second
        async with ft.refresh_lock(store, "ftjob-2", "bot-b", 60_000) as other_job:
            assert other_job
        assert await store.redis.exists(keys.finetune_refresh_lock(store.prefix, "ftjob-1"))
    async with ft.refresh_lock(store, "ftjob-1", "bot-b", 60_000) as after:
        assert after
    assert not await store.redis.exists(keys.finetune_refresh_lock(store.prefix, "ftjob-1"))


async def test_the_refresh_lock_is_released_when_the_refresh_fails(store):
    with pytest.raises(RuntimeError):
        async with ft.refresh_lock(store, "ftjob-1", "bot-a", 60_000) as held:
            assert held
            raise RuntimeError("retrieve failed")
    assert not await store.redis.exists(keys.finetune_refresh_lock(store.prefix, "ftjob-1"))


async def test_an_expired_refresh_lock_taken_by_another_is_not_released(store):
    key = keys.finetune_refresh_lock(store.prefix, "ftjob-1")
    async with ft.refresh_lock(store, "ftjob-1", "bot-a", 60_000) as held:
        assert held
        await store.redis.set(key, "bot-b:other")  # ours expired; bot-b holds it now
    assert await store.redis.get(key) == b"bot-b:other"


async def test_the_watching_lease_has_one_holder_who_can_renew_it(store):
    assert await ft.hold_lease(store, "ftjob-1", "bot-a", 60_000)
    assert not await ft.hold_lease(store, "ftjob-1", "bot-b", 60_000)
    assert await ft.hold_lease(store, "ftjob-1", "bot-a", 60_000)
    assert await store.redis.get(keys.finetune_lease(store.prefix, "ftjob-1")) == b"bot-a"
