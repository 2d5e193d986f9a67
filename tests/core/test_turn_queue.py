"""The turn queue: one lease holder per thread, arrival order, fencing, adoption.

Two owners stand for two bot processes sharing one Redis (or one cluster).
"""

from __future__ import annotations

import asyncio

from core import history, keys, turn_queue

CONV = "T1:C1:1.000"


def _msg(i: int, tokens: int = 10) -> dict:
    return {"role": "user", "content": f"m{i}", "tokens": tokens, "ts": f"{i}.0", "user": "U1"}


async def _enqueue(store, i, owner, *, lease_ms=5_000, require_existing=False, event=None):
    record = turn_queue.new_record(_msg(i), n=i)
    return await turn_queue.enqueue(
        store,
        CONV,
        record,
        owner=owner,
        markers=[f"event:{event or i}", f"msg:{i}"],
        require_existing=require_existing,
        budget=10_000,
        ttl=3600,
        lease_ms=lease_ms,
    )


def _answer(i: int) -> dict:
    return {"role": "assistant", "content": f"a{i}", "tokens": 5}


async def _close(store, opened, i, *, lease_ms=5_000):
    return await turn_queue.close(
        store,
        opened,
        _answer(i),
        usage={"total_tokens": 3},
        meta=None,
        ttl=3600,
        budget=10_000,
        lease_ms=lease_ms,
    )


def _contents(opened) -> list[str]:
    return [m["content"] for m in opened.window]


async def test_turns_from_two_processes_run_in_arrival_order_with_full_context(store):
    first = await _enqueue(store, 1, "A")
    assert first.status == "lead" and _contents(first.opened) == ["m1"]
    # B gets message 2 while A is answering 1: it only queues it.
    second = await _enqueue(store, 2, "B")
    assert second.status == "queued" and second.opened is None
    assert await history.messages(store, CONV) == [_msg(1)]  # 2 isn't in the history yet

    after = await _close(store, first.opened, 1)
    assert after.status == "next"
    assert _contents(after.opened) == ["m1", "a1", "m2"]
    assert after.opened.record["n"] == 2 and after.opened.lease == first.opened.lease

    done = await _close(store, after.opened, 2)
    assert done.status == "idle"
    assert [m["content"] for m in await history.messages(store, CONV)] == ["m1", "a1", "m2", "a2"]
    assert not await store.redis.exists(keys.conversation(store.prefix, CONV).lease)
    # the next message finds nobody holding the thread and leads
    assert (await _enqueue(store, 3, "B")).status == "lead"


async def test_a_message_delivered_late_is_answered_in_slacks_order(store):
    first = await _enqueue(store, 1, "A")
    await _enqueue(store, 4, "B")
    await _enqueue(store, 2, "A")  # delivered after 4, sent before it
    await _enqueue(store, 3, "B")
    order, step = [], await _close(store, first.opened, 1)
    while step.status == "next":
        order.append(step.opened.record["n"])
        step = await _close(store, step.opened, order[-1])
    assert order == [2, 3, 4]


async def test_a_follow_up_that_overtakes_the_threads_first_mention_is_answered_after_it(store):
    # process B queues the follow-up before process A has queued the mention that
    # started the thread: B can't tell it from a thread that isn't ours yet
    assert (await _enqueue(store, 2, "B", require_existing=True)).status == "foreign"
    first = await _enqueue(store, 1, "A")
    after = await _close(store, first.opened, 1)
    assert after.status == "next" and _contents(after.opened) == ["m1", "a1", "m2"]


async def test_a_follow_up_in_a_thread_that_is_not_ours_is_soon_forgotten(store):
    assert (await _enqueue(store, 2, "B", require_existing=True)).status == "foreign"
    parked = keys.conversation(store.prefix, CONV).parked
    assert 0 < await store.redis.pttl(parked) <= turn_queue.park_ms(5_000)
    assert not await store.redis.exists(keys.conversation(store.prefix, CONV).meta)


async def test_duplicates_and_foreign_follow_ups_are_not_queued(store):
    assert (await _enqueue(store, 7, "A", require_existing=True)).status == "foreign"
    assert (await _enqueue(store, 7, "B", require_existing=True)).status == "foreign"  # not parked twice
    assert await store.redis.llen(keys.conversation(store.prefix, CONV).parked) == 1
    first = await _enqueue(store, 1, "A")
    assert (await _enqueue(store, 1, "B")).status == "duplicate"  # same message, other process
    assert (await _enqueue(store, 9, "B", event="1")).status == "duplicate"  # Slack's retry
    # a follow-up right behind the thread's first (still unanswered) mention is ours
    assert (await _enqueue(store, 2, "B", require_existing=True)).status == "queued"
    assert (await _close(store, first.opened, 1)).status == "next"


async def test_a_dead_holders_turn_is_adopted_once_and_its_writes_are_fenced(store):
    first = await _enqueue(store, 1, "A", lease_ms=100)
    await turn_queue.mark_shown(store, first.opened, "111.222")
    await _enqueue(store, 2, "B")
    assert (await turn_queue.adopt(store, CONV, owner="B", budget=10_000, ttl=3600)).status == "busy"
    await asyncio.sleep(0.25)  # A stopped renewing: its lease runs out

    adopted = await turn_queue.adopt(store, CONV, owner="B", budget=10_000, ttl=3600)
    assert adopted.status == "lead" and adopted.opened.lease.fence > first.opened.lease.fence
    # the same turn, its message not appended twice, and where A was showing its answer
    assert adopted.opened.token == first.opened.token and adopted.opened.tries == 2
    assert _contents(adopted.opened) == ["m1"] and adopted.opened.shown == "111.222"

    # A wakes up from its stall: it can neither answer nor keep the lease
    assert (await _close(store, first.opened, 1)).status == "lost"
    assert await turn_queue.renew(store, first.opened.lease) == -1  # B holds it now
    assert not await turn_queue.mark_shown(store, first.opened, "999.0")
    assert [m["content"] for m in await history.messages(store, CONV)] == ["m1"]

    after = await _close(store, adopted.opened, 1)
    assert after.status == "next" and _contents(after.opened) == ["m1", "a1", "m2"]
    assert after.opened.shown == "" and after.opened.tries == 1


async def test_handing_over_on_shutdown_lets_another_process_adopt_at_once(store):
    first = await _enqueue(store, 1, "A")
    await _enqueue(store, 2, "A")
    after = await _close(store, first.opened, 1)
    await turn_queue.hand_over(store, after.opened.lease)
    assert CONV in [conv for conv, _ in await turn_queue.due(store)]
    adopted = await turn_queue.adopt(store, CONV, owner="B", budget=10_000, ttl=3600)
    assert adopted.status == "lead" and _contents(adopted.opened) == ["m1", "a1", "m2"]
    assert adopted.opened.tries == 2  # opened by A before it handed over


async def test_the_recovery_index_forgets_idle_threads_but_not_a_new_turn(store):
    first = await _enqueue(store, 1, "A")
    assert await turn_queue.due(store) == []  # not before the lease could have run out
    await store.redis.zadd(keys.open_turns(store.prefix), {CONV: 1})
    [(conv, score)] = await turn_queue.due(store)
    assert (await turn_queue.adopt(store, CONV, owner="B", budget=10_000, ttl=3600)).status == "busy"
    await _close(store, first.opened, 1)
    assert (await turn_queue.adopt(store, CONV, owner="B", budget=10_000, ttl=3600)).status == "idle"
    await _enqueue(store, 2, "A")  # a new turn moves the score: the stale forget keeps it
    await turn_queue.forget(store, conv, score)
    assert await store.redis.zscore(keys.open_turns(store.prefix), CONV) is not None
    await store.redis.zadd(keys.open_turns(store.prefix), {CONV: 2})
    await turn_queue.forget(store, CONV, 2.0)
    assert await store.redis.zscore(keys.open_turns(store.prefix), CONV) is None


async def test_a_turn_costs_constant_round_trips_whatever_the_queue(store):
    from core.store import RoundTrips

    first = await _enqueue(store, 0, "A")
    for i in range(1, 40):
        await _enqueue(store, i, "B")
    opened, costs = first.opened, []
    for i in range(40):
        before = RoundTrips.count
        step = await _close(store, opened, i)
        costs.append(RoundTrips.count - before)
        opened = step.opened
    assert set(costs) == {1}, costs  # close + open the next: one script
    assert step.status == "idle"


async def test_an_event_acked_but_never_queued_is_handed_to_a_scan_once_a_lease_has_passed(store):
    await turn_queue.accept(store, [(CONV, "event:7", "7.0", '{"event": "seven"}')], lease_ms=600)
    assert CONV.encode() in await store.redis.zrange(keys.open_turns(store.prefix), 0, -1)
    early = await turn_queue.adopt(store, CONV, owner="B", budget=10_000, ttl=3600, lease_ms=600)
    assert early.status == "busy" and early.orphans == []  # its process may still queue it
    await asyncio.sleep(0.7)
    late = await turn_queue.adopt(store, CONV, owner="B", budget=10_000, ttl=3600, lease_ms=600)
    assert late.orphans == ['{"event": "seven"}'] and late.status == "busy"  # until it is queued
    again = await turn_queue.adopt(store, CONV, owner="C", budget=10_000, ttl=3600, lease_ms=600)
    assert again.orphans == []  # not replayed twice within a lease
    await asyncio.sleep(0.7)  # the replay failed before queueing it: replayed once more
    assert (await turn_queue.adopt(store, CONV, owner="C", budget=10_000, ttl=3600, lease_ms=600)).orphans


async def test_queueing_an_event_takes_it_out_of_the_inbox(store):
    await turn_queue.accept(store, [(CONV, "event:1", "1.0", "{}")], lease_ms=100)
    await _enqueue(store, 1, "A")
    await asyncio.sleep(0.2)
    assert (await turn_queue.adopt(store, CONV, owner="B", budget=10_000, ttl=3600)).orphans == []


async def test_a_retried_call_is_answered_as_the_first_one_was(store):
    first = await _enqueue(store, 1, "A")
    record = turn_queue.new_record(_msg(1), n=1)
    record["token"] = first.opened.token  # the same call again: its reply was lost
    again = await turn_queue.enqueue(
        store,
        CONV,
        record,
        owner="A",
        markers=["event:1", "msg:1"],
        require_existing=False,
        budget=10_000,
        ttl=3600,
    )
    assert again.status == "lead" and again.opened.lease == first.opened.lease
    assert again.opened.tries == 1 and _contents(again.opened) == ["m1"]


async def test_a_later_message_waits_for_an_earlier_one_another_process_has_acked(store):
    first = await _enqueue(store, 1, "A")
    await _close(store, first.opened, 1)  # the thread is idle
    # process B acked message 2 and is about to queue it; process A queues message 3 first
    await turn_queue.accept(store, [(CONV, "event:2", "2.0", "{}")])
    assert (await _enqueue(store, 3, "A")).status == "queued"  # waits for 2
    second = await _enqueue(store, 2, "B")
    assert second.status == "lead" and _contents(second.opened)[-1] == "m2"
    after = await _close(store, second.opened, 2)
    assert after.status == "next" and _contents(after.opened)[-2:] == ["a2", "m3"]


async def test_a_close_leaves_the_next_turn_to_an_earlier_message_still_being_queued(store):
    first = await _enqueue(store, 1, "A")
    await turn_queue.accept(store, [(CONV, "event:2", "2.0", "{}")])  # acked by B, not queued yet
    assert (await _enqueue(store, 3, "A")).status == "queued"
    assert (await _close(store, first.opened, 1)).status == "idle"  # 3 must not go before 2
    second = await _enqueue(store, 2, "B")
    assert second.status == "lead" and _contents(second.opened)[-1] == "m2"
    # and a polite adopt (after a thread command) waits the same way
    await turn_queue.accept(store, [(CONV, "event:4", "4.0", "{}")])
    await _enqueue(store, 5, "A")
    after = await _close(store, second.opened, 2)
    assert after.status == "next" and _contents(after.opened)[-1] == "m3"
    assert (await _close(store, after.opened, 3)).status == "idle"
    polite = await turn_queue.adopt(store, CONV, owner="C", budget=10_000, ttl=3600, polite=True)
    assert polite.status == "busy"
