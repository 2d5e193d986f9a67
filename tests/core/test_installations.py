"""The Redis installation and OAuth state stores, held to what slack-sdk's own stores
are tested for (tests/slack_sdk/oauth/installation_store/test_file.py and friends), on
Valkey, Redis 7 and the cluster."""

from __future__ import annotations

import asyncio

from slack_sdk.oauth.installation_store.models.installation import Installation

from core.installations import RedisInstallationStore, RedisOAuthStateStore


def _installation(**kw) -> Installation:
    fields = dict(
        app_id="A111",
        enterprise_id="E111",
        team_id="T111",
        user_id="U111",
        bot_id="B111",
        bot_token="xoxb-111",
        bot_scopes=["chat:write"],
        bot_user_id="U222",
    )
    fields.update(kw)
    return Installation(**fields)


async def test_save_and_find(store):
    installations = RedisInstallationStore(store, client_id="111.222")
    await installations.async_save(_installation())

    bot = await installations.async_find_bot(enterprise_id="E111", team_id="T111")
    assert bot is not None and bot.bot_token == "xoxb-111" and bot.bot_scopes == ["chat:write"]
    found = await installations.async_find_installation(enterprise_id="E111", team_id="T111")
    assert found is not None and found.user_id == "U111" and found.bot_user_id == "U222"
    assert await installations.async_find_installation(enterprise_id="E111", team_id="T222") is None
    assert await installations.async_find_bot(enterprise_id=None, team_id="T111") is None
    mine = await installations.async_find_installation(enterprise_id="E111", team_id="T111", user_id="U111")
    assert mine is not None and mine.bot_token == "xoxb-111"
    assert (
        await installations.async_find_installation(enterprise_id="E111", team_id="T111", user_id="U999")
        is None
    )

    await installations.async_delete_bot(enterprise_id="E111", team_id="T111")
    assert await installations.async_find_bot(enterprise_id="E111", team_id="T111") is None
    await installations.async_delete_installation(enterprise_id="E111", team_id="T111")
    assert await installations.async_find_installation(enterprise_id="E111", team_id="T111") is None
    assert (
        await installations.async_find_installation(enterprise_id="E111", team_id="T111", user_id="U111")
        is None
    )


async def test_org_wide_installation_is_found_from_any_workspace_of_the_org(store):
    installations = RedisInstallationStore(store)
    await installations.async_save(
        _installation(
            app_id="AO111", enterprise_id="EO111", team_id=None, user_id="UO111", is_enterprise_install=True
        )
    )
    assert await installations.async_find_bot(enterprise_id="EO111", team_id=None) is not None
    assert await installations.async_find_bot(
        enterprise_id="EO111", team_id="TO222", is_enterprise_install=True
    )
    assert await installations.async_find_bot(enterprise_id="EO111", team_id="TO222") is None
    assert await installations.async_find_bot(enterprise_id=None, team_id="TO111") is None
    found = await installations.async_find_installation(
        enterprise_id="EO111", team_id="TO222", is_enterprise_install=True
    )
    assert found is not None and found.is_enterprise_install


async def test_a_reinstall_keeps_history_and_the_latest_wins(store):
    installations = RedisInstallationStore(store)
    await installations.async_save(_installation(installed_at=1_700_000_000.0))
    await installations.async_save(_installation(bot_token="xoxb-222", installed_at=1_700_000_100.0))
    assert (await installations.async_find_bot(enterprise_id="E111", team_id="T111")).bot_token == "xoxb-222"
    history = await installations.async_history(enterprise_id="E111", team_id="T111")
    assert [i.bot_token for i in history] == ["xoxb-111", "xoxb-222"]

    without = RedisInstallationStore(store, historical_data_enabled=False, client_id="other")
    await without.async_save(_installation())
    assert await without.async_history(enterprise_id="E111", team_id="T111") == []
    assert await without.async_find_bot(enterprise_id="E111", team_id="T111") is not None


async def test_token_rotation_fields_survive_a_round_trip(store):
    installations = RedisInstallationStore(store)
    await installations.async_save(
        _installation(bot_token="xoxe.xoxb-1", bot_refresh_token="xoxe-1-r", bot_token_expires_in=43_200)
    )
    bot = await installations.async_find_bot(enterprise_id="E111", team_id="T111")
    assert bot.bot_refresh_token == "xoxe-1-r" and bot.bot_token_expires_at is not None
    found = await installations.async_find_installation(enterprise_id="E111", team_id="T111")
    assert found.bot_refresh_token == "xoxe-1-r" and found.bot_token_expires_at == bot.bot_token_expires_at


async def test_a_user_installation_without_a_bot_carries_the_workspaces_latest_bot(store):
    """slack-sdk issue 1441: user-only installs mixed with bot installs."""
    installations = RedisInstallationStore(store)
    await installations.async_save(_installation(user_id="U111", user_token=None))
    await installations.async_save(
        _installation(user_id="U333", bot_id=None, bot_token=None, bot_user_id=None, user_token="xoxp-333")
    )
    latest = await installations.async_find_installation(enterprise_id="E111", team_id="T111")
    assert latest.user_id == "U333" and latest.bot_token == "xoxb-111"
    theirs = await installations.async_find_installation(enterprise_id="E111", team_id="T111", user_id="U333")
    assert theirs.user_token == "xoxp-333" and theirs.bot_token == "xoxb-111"

    await installations.async_delete_installation(enterprise_id="E111", team_id="T111", user_id="U333")
    assert (
        await installations.async_find_installation(enterprise_id="E111", team_id="T111", user_id="U333")
        is None
    )
    assert await installations.async_find_installation(enterprise_id="E111", team_id="T111", user_id="U111")
    await installations.async_delete_all(enterprise_id="E111", team_id="T111")
    assert await installations.async_find_bot(enterprise_id="E111", team_id="T111") is None
    assert (
        await installations.async_find_installation(enterprise_id="E111", team_id="T111", user_id="U111")
        is None
    )


async def test_a_state_is_consumed_once_and_not_after_it_expires(store):
    states = RedisOAuthStateStore(store, expiration_seconds=1)
    state = await states.async_issue()
    assert len(state) >= 32
    assert await states.async_consume(state)
    assert not await states.async_consume(state), "a state works once"
    assert not await states.async_consume("made-up")
    late = await states.async_issue()
    await asyncio.sleep(1.2)
    assert not await states.async_consume(late)


async def test_two_callbacks_racing_with_one_state_let_one_through(store):
    states = RedisOAuthStateStore(store)
    state = await states.async_issue()
    results = await asyncio.gather(*(states.async_consume(state) for _ in range(10)))
    assert results.count(True) == 1


async def test_an_orgs_workspaces_are_found_from_their_placements(store):
    installations = RedisInstallationStore(store)
    await installations.async_place("T1", "E1", True)
    await installations.async_place("T2", "E1", True)
    await installations.async_place("T3", "E2", False)
    assert await installations.async_teams_of("E1") == ["T1", "T2"]
    assert await installations.async_placement("T3") == ("E2", False)
    assert await installations.async_placement("T9") is None
