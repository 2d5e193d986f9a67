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


_VOTE = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
local votes = raw and cjson.decode(raw) or {}
votes[ARGV[2]] = {rating = ARGV[3], at = tonumber(ARGV[4])}
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(votes))
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


async def rate(
    store: Store, team: str, conv_id: str, reply_ts: str, rating: str, user: str, *, ttl: int
) -> None:
    """Record `user`'s rating of one reply; a later rating by the same user replaces it.

    The read-modify-write of a reply's votes runs in one script, so simultaneous clicks
    can't overwrite each other (a lost 👎 would let a disliked answer into a dataset).
    """
    now = time.time()
    script = store.redis.register_script(_VOTE)
    await script(
        keys=[keys.feedback(store.prefix, conv_id)], args=[reply_ts, user, rating, round(now, 3), int(ttl)]
    )
    rated = keys.workspace(store.prefix, team).rated
    async with store.redis.pipeline(transaction=False) as pipe:
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
    raw = await store.redis.zrangebyscore(keys.workspace(store.prefix, team).rated, since, "+inf")
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


_INDEX_ANSWER = """
for i = 1, #KEYS do redis.call('SET', KEYS[i], ARGV[1], 'EX', ARGV[2]) end
return #KEYS
"""


def index_answer_call(
    store: Store, team: str, channel: str, message_ts: list[str], thread_ts: str, *, ttl: int
) -> tuple[str, list[str], list]:
    """Where an answer's messages are, for `thread_of`: sent with the turn's close."""
    return (
        _INDEX_ANSWER,
        [keys.answer_thread(store.prefix, team, channel, ts) for ts in message_ts],
        [thread_ts, int(ttl)],
    )


async def thread_of(store: Store, team: str, channel: str, ts: str) -> str | None:
    """The thread of one of our answers' messages, if it is known."""
    found = await store.redis.get(keys.answer_thread(store.prefix, team, channel, ts))
    return found.decode() if found else None
