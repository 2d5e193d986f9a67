"""Ratings survive concurrency, and a single 👎 keeps an answer out of datasets."""

from __future__ import annotations

import asyncio

from core import feedback, history

CONV = "T1:C1:1.0"


async def test_simultaneous_votes_are_all_kept(store):
    votes = [("U1", "good"), ("U2", "good"), ("U3", "bad"), ("U4", "good"), ("U5", "good")]
    await asyncio.gather(*(feedback.rate(store, "T1", CONV, "9.9", r, u, ttl=60) for u, r in votes))
    await history.open_turn(
        store,
        CONV,
        {"role": "user", "content": "q", "tokens": 3},
        budget=100,
        ttl=60,
        event_key="e",
        message_key="m",
    )
    await history.close_turn(
        store, CONV, {"role": "assistant", "content": "a", "tokens": 3, "slack_ts": ["9.9"]}, ttl=60
    )
    _, good, _ = await feedback.good_replies(store, CONV)
    assert good == []  # the 👎 was not lost
    raw = await store.redis.hget(f"{store.prefix}:c:{{{CONV}}}:feedback", "9.9")
    import json

    assert len(json.loads(raw)) == 5
    assert await feedback.rated_conversations(store, "T1", since=0) == [CONV]
    assert await feedback.rated_conversations(store, "T1", since=0, channel="C2") == []
