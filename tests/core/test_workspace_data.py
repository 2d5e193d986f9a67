"""Forgetting a workspace deletes all of its data and nothing of anyone else's."""

from __future__ import annotations

from slack_sdk.oauth.installation_store.models.installation import Installation

from core import history, keys, personas, usage, workspace_data
from core.installations import RedisInstallationStore


async def _seed(store, team: str) -> None:
    conv = keys.conversation_id(team, "C1", "1.000")
    await history.seed(store, conv, [{"role": "user", "content": "hi", "tokens": 3}], ttl=3600)
    await personas.create(store, team, personas.make_custom("support", "Help."))
    await usage.record(store, usage.Spend(team, "C1", "default", "U1", "gpt-4.1-mini", 10, 5, marker=team))
    await store.redis.zadd(keys.open_turns(store.prefix), {conv: 1.0})
    await RedisInstallationStore(store).async_save(
        Installation(
            app_id="A1", team_id=team, user_id="U1", bot_id="B1", bot_token=f"xoxb-{team}", bot_user_id="UB"
        )
    )


async def _keys_of(store, team: str) -> list[bytes]:
    found = []
    for pattern in [*keys.workspace_patterns(store.prefix, team), f"{store.prefix}:inst:{{*-{team}}}:*"]:
        found += [k async for k in store.redis.scan_iter(match=pattern)]
    return found


async def test_forgetting_a_workspace_deletes_its_data_and_only_its_data(store):
    await _seed(store, "T1")
    await _seed(store, "T10")  # a team id that starts with the other's
    assert await _keys_of(store, "T1")
    deleted = await workspace_data.forget(store, "T1")
    assert deleted >= 5
    assert await _keys_of(store, "T1") == []
    assert await RedisInstallationStore(store).async_find_bot(enterprise_id=None, team_id="T1") is None
    members = [m.decode() for m in await store.redis.zrange(keys.open_turns(store.prefix), 0, -1)]
    assert members == ["T10:C1:1.000"]
    assert await personas.get(store, "T10", "support") is not None
    assert await history.messages(store, keys.conversation_id("T10", "C1", "1.000"))


async def test_a_scheduled_forget_waits_for_its_grace_period_and_a_reinstall_cancels_it(store):
    await _seed(store, "T1")
    await _seed(store, "T2")
    await workspace_data.schedule_forget(store, "T1", after_seconds=60, now=1000)
    await workspace_data.schedule_forget(store, "T2", after_seconds=60, now=1000)
    assert await workspace_data.forget_due(store, now=1030) == []
    await workspace_data.cancel_forget(store, "T2")
    assert await workspace_data.forget_due(store, now=1061) == ["T1"]
    assert await _keys_of(store, "T1") == [] and await _keys_of(store, "T2")
