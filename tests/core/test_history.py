"""Conversation memory: dedupe, windows from cached counts, constant round trips."""

from __future__ import annotations

import json

from core import history, keys

CONV = "T1:C1:1.000"


def _msg(i: int, tokens: int = 10) -> dict:
    return {"role": "user", "content": f"m{i}", "tokens": tokens, "ts": f"{i}.0", "user": "U1"}


async def _open(store, i, *, budget=1000, tokens=10, event=None, require_existing=False):
    return await history.open_turn(
        store,
        CONV,
        _msg(i, tokens),
        budget=budget,
        ttl=3600,
        event_key=f"event:{event or i}",
        message_key=f"msg:{i}",
        require_existing=require_existing,
    )


async def test_window_is_the_newest_messages_that_fit(store):
    for i in range(200):
        turn = await _open(store, i, budget=95)
    assert turn.status == "ok"
    assert [m["content"] for m in turn.window] == [f"m{i}" for i in range(191, 200)]
    assert turn.length == 200
    assert turn.meta["history_tokens"] == "2000"


async def test_newest_message_is_kept_even_when_over_budget(store):
    turn = await _open(store, 1, budget=5, tokens=50)
    assert [m["content"] for m in turn.window] == ["m1"]


async def test_retried_event_and_double_delivery_are_duplicates(store):
    assert (await _open(store, 1)).status == "ok"
    assert (await _open(store, 1)).status == "duplicate"  # same event id
    assert (await _open(store, 1, event="other")).status == "duplicate"  # same message ts
    assert len(await history.messages(store, CONV)) == 1


async def test_follow_up_in_a_foreign_thread_is_not_recorded(store):
    assert (await _open(store, 1, require_existing=True)).status == "foreign"
    assert await history.messages(store, CONV) == []
    assert not await history.exists(store, CONV)


async def test_close_turn_records_answer_and_usage(store):
    await _open(store, 1)
    answer = {"role": "assistant", "content": "hi", "tokens": 4}
    await history.close_turn(
        store, CONV, answer, ttl=3600, usage={"prompt_tokens": 30, "completion_tokens": 4}
    )
    await _open(store, 2)
    meta = await history.get_meta(store, CONV)
    assert meta["usage_prompt_tokens"] == "30" and meta["turns"] == "1" and meta["messages"] == "3"
    assert [m["role"] for m in await history.messages(store, CONV)] == ["user", "assistant", "user"]


async def test_keys_share_one_hash_tag_and_expire(store):
    await _open(store, 1)
    k = keys.conversation(store.prefix, CONV)
    assert all("{T1:C1:1.000}" in key for key in (k.msgs, k.toks, k.meta))
    for key in (k.msgs, k.toks, k.meta):
        ttl = await store.redis.ttl(key)
        assert 3500 < ttl <= 3600


async def test_reset_forgets_messages_but_keeps_the_thread(store):
    await _open(store, 1)
    await history.set_meta(store, CONV, {"persona": json.dumps({"name": "teacher"})}, ttl=3600)
    await history.reset(store, CONV, ttl=3600)
    assert await history.messages(store, CONV) == []
    assert (await history.get_meta(store, CONV))["persona"]
    turn = await _open(store, 2, require_existing=True)
    assert turn.status == "ok" and [m["content"] for m in turn.window] == ["m2"]


async def test_round_trips_per_turn_do_not_grow_with_history(redis_url, key_prefix):
    """One round trip to open a turn and one to close it, at 10 or 5,000 messages."""
    from core.store import RoundTrips, Store, connect
    from tests.conftest import _delete_prefix

    redis = connect(redis_url)
    store = Store(redis=redis, prefix=key_prefix)
    try:
        await redis.ping()  # connection handshake outside the measurement
        counts = {}
        for size, conv in ((10, "T1:C1:10.0"), (5000, "T1:C1:5000.0")):
            k = keys.conversation(key_prefix, conv)
            await redis.rpush(k.msgs, *[json.dumps(_msg(i)) for i in range(size)])
            await redis.rpush(k.toks, *[10] * size)
            await history.open_turn(
                store, conv, _msg(-1), budget=500, ttl=60, event_key="e0", message_key="m0"
            )
            before = RoundTrips.count
            turn = await history.open_turn(
                store, conv, _msg(-2), budget=500, ttl=60, event_key="e", message_key="m"
            )
            await history.close_turn(store, conv, {"role": "assistant", "content": "x", "tokens": 3}, ttl=60)
            counts[size] = RoundTrips.count - before
            assert turn.status == "ok" and len(turn.window) == min(size + 2, 50)
        assert counts == {10: 2, 5000: 2}
    finally:
        await _delete_prefix(redis, key_prefix)
        await redis.aclose()
