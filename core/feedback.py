"""Feedback on replies (buttons and reactions), kept with the conversation.

A rating is stored under the reply's Slack ts in the conversation's own hash (same
hash tag), and the conversation is indexed per workspace by the time of its last rating,
so a dataset build reads only rated conversations.
"""

from __future__ import annotations

import json
import time

from core import history, keys
from core.store import Store

GOOD, BAD = "good", "bad"
RATED_KEEP_SECONDS = 180 * 86400


async def rate(
    store: Store, team: str, conv_id: str, reply_ts: str, rating: str, user: str, *, ttl: int
) -> None:
    """Record `user`'s rating of one reply; a later rating by the same user replaces it."""
    key = keys.feedback(store.prefix, conv_id)
    raw = await store.redis.hget(key, reply_ts)
    votes = json.loads(raw) if raw else {}
    votes[user] = {"rating": rating, "at": round(time.time(), 3)}
    now = time.time()
    rated = keys.workspace(store.prefix, team)["rated"]
    async with store.redis.pipeline(transaction=False) as pipe:
        pipe.hset(key, reply_ts, json.dumps(votes))
        pipe.expire(key, ttl)
        pipe.zadd(rated, {conv_id: now})
        pipe.zremrangebyscore(rated, 0, now - RATED_KEEP_SECONDS)
        await pipe.execute()


def verdict(votes: dict) -> str | None:
    """A reply counts as good when someone liked it and nobody disliked it."""
    ratings = {v["rating"] for v in votes.values()}
    if BAD in ratings:
        return BAD
    return GOOD if GOOD in ratings else None


async def rated_conversations(
    store: Store, team: str, *, since: float, channel: str | None = None
) -> list[str]:
    raw = await store.redis.zrangebyscore(keys.workspace(store.prefix, team)["rated"], since, "+inf")
    convs = [r.decode() for r in raw]
    if channel:
        convs = [c for c in convs if c.split(":")[1] == channel]
    return convs


async def good_replies(store: Store, conv_id: str) -> tuple[list[dict], list[int], dict[str, str]]:
    """The conversation's messages, the indexes of replies rated good, and its metadata."""
    raw = await store.redis.hgetall(keys.feedback(store.prefix, conv_id))
    good_ts = {k.decode() for k, v in raw.items() if verdict(json.loads(v)) == GOOD}
    messages = await history.messages(store, conv_id)
    meta = await history.get_meta(store, conv_id)
    indexes = [
        i
        for i, m in enumerate(messages)
        if m.get("role") == "assistant" and good_ts.intersection(m.get("slack_ts") or ())
    ]
    return messages, indexes, meta
