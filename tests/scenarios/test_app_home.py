"""App Home: what members and admins see, and the buttons and modals it offers."""

from __future__ import annotations

import json

from core import audit, personas, schemas
from core.finetune import store as finetune_store
from tests.scenarios.blockkit import assert_valid_view
from tests.scenarios.harness import mention
from tests.standins.openai_api import Reply


def _opened(user: str, tab: str = "home") -> dict:
    return {"type": "app_home_opened", "user": user, "channel": f"D{user}", "tab": tab, "event_ts": "1.0"}


async def _home(bot, slack, user: str) -> str:
    slack.home_views.pop(user, None)
    await bot.event(_opened(user))
    await bot.idle()
    view = slack.home_views[user]
    assert_valid_view(view)
    return json.dumps(view["blocks"], ensure_ascii=False)


async def _seed(bot) -> None:
    store = bot.deps.core.store
    await personas.create(
        store, "T1", personas.make_custom("support", "You help customers.", description="Help desk")
    )
    await personas.set_channel(store, "T1", "C1", personas.Choice("expert", "tax law", by="UADMIN"))
    await personas.set_channel(store, "T1", "C9", personas.Choice("teacher", by="UADMIN"))
    await schemas.save(
        store, "T1", "incident", '{"type": "object", "properties": {"severity": {"type": "string"}}}'
    )
    await finetune_store.save_job(
        store,
        finetune_store.JobRecord(
            "ftjob-abc", "T1", "CADM", "1.0", "best-threads", "gpt-4.1-mini", "UADMIN", "running"
        ),
    )


async def test_a_member_sees_personas_schemas_commands_and_only_their_own_usage(http_bot, slack, openai_api):
    bot = await http_bot(ADMIN_USER_IDS="UADMIN")
    await _seed(bot)
    slack.members = {"C1": ["UBOT", "U1"], "C9": ["UBOT", "U2"]}
    openai_api.enqueue(Reply(text="hi", usage=(1_000, 500)))
    await bot.event(mention("hello", user="U1"))
    await bot.idle()

    shown = await _home(bot, slack, "U1")
    for expected in (
        "*default*",
        "*socratic*",
        "*support*: Help desk",
        "`incident`",
        "`/ask-json",
        "`/usage`",
    ):
        assert expected in shown, expected
    assert "<#C1>: *expert* (tax law)" in shown
    assert "<#C9>" not in shown, "a channel's persona is shown only to its members"
    assert "1 turns" in shown and "Your usage this month" in shown
    assert "Admin" not in shown and "ftjob-abc" not in shown and "Create a persona" not in shown


async def test_an_admin_also_sees_jobs_datasets_and_the_workspaces_usage(http_bot, slack, openai_api):
    bot = await http_bot(ADMIN_USER_IDS="UADMIN")
    await _seed(bot)
    openai_api.enqueue(Reply(text="hi", usage=(1_000, 500)))
    await bot.event(mention("hello", user="U1", channel="C1"))
    await bot.idle()
    shown = await _home(bot, slack, "UADMIN")
    assert "Fine-tune jobs (1)" in shown and "`ftjob-abc` *running*" in shown and "best-threads" in shown
    assert "Workspace usage, last 30 days" in shown and "By channel" in shown and "<#C1>" in shown
    assert "Create a persona" in shown and "Add a JSON schema" in shown


async def test_home_stays_within_slacks_limits_with_many_personas_and_jobs(http_bot, slack):
    bot = await http_bot(ADMIN_USER_IDS="UADMIN")
    store = bot.deps.core.store
    for i in range(100):
        await personas.create(store, "T1", personas.make_custom(f"persona-{i:03d}", "x " * 500))
    for i in range(50):
        await finetune_store.save_job(
            store,
            finetune_store.JobRecord(f"ftjob-{i}", "T1", "C", "1.0", "ds", "gpt-4.1-mini", "U", "succeeded"),
        )
    shown = await _home(bot, slack, "UADMIN")
    assert "…and" in shown and "Fine-tune jobs (50)" in shown


def _click(action_id: str, user: str) -> dict:
    return {
        "type": "block_actions",
        "team": {"id": "T1"},
        "user": {"id": user, "team_id": "T1"},
        "api_app_id": "A1",
        "trigger_id": f"trig-{action_id}",
        "container": {"type": "view", "view_id": f"VH{user}"},
        "view": {"type": "home", "id": f"VH{user}"},
        "actions": [{"action_id": action_id, "block_id": "home_buttons", "type": "button"}],
    }


def _submission(view: dict, user: str, values: dict) -> dict:
    state = {}
    for block, value in values.items():
        if block == "channel":
            state[block] = {"value": {"type": "conversations_select", "selected_conversation": value}}
        elif block == "persona":
            state[block] = {"value": {"type": "static_select", "selected_option": {"value": value}}}
        else:
            state[block] = {"value": {"type": "plain_text_input", "value": value}}
    return {
        "type": "view_submission",
        "team": {"id": "T1"},
        "user": {"id": user},
        "view": {**view, "state": {"values": state}},
    }


async def _modal(bot, slack, action_id: str, user: str) -> dict:
    before = len(slack.calls_to("views.open"))
    await bot.action(_click(action_id, user))
    await bot.idle()
    calls = slack.calls_to("views.open")
    assert len(calls) == before + 1, "a modal opened"
    view = calls[-1].params["view"]
    view = json.loads(view) if isinstance(view, str) else view
    assert_valid_view(view)
    return view


async def test_a_member_sets_a_channels_persona_from_home_checked_in_the_modal(http_bot, slack):
    bot = await http_bot()
    slack.members = {"C1": ["UBOT", "U1"], "C2": ["UBOT", "U2"], "C3": ["U1"]}
    view = await _modal(bot, slack, "home_set_channel_persona", "U1")

    not_mine = await bot.action(_submission(view, "U1", {"channel": "C2", "persona": "teacher"}))
    assert json.loads(not_mine.body)["errors"]["channel"].startswith("You can only set")
    bot_absent = await bot.action(_submission(view, "U1", {"channel": "C3", "persona": "teacher"}))
    assert "Invite @Threadwise" in json.loads(bot_absent.body)["errors"]["channel"]
    gone = await bot.action(_submission(view, "U1", {"channel": "C1", "persona": "deleted-one"}))
    assert "no longer exists" in json.loads(gone.body)["errors"]["persona"]

    done = await bot.action(
        _submission(view, "U1", {"channel": "C1", "persona": "teacher", "domain": "math"})
    )
    assert done.status == 200 and not done.body
    await bot.idle()
    resolved = await personas.resolve(bot.deps.core.store, "T1", "C1", None)
    assert (resolved.choice.name, resolved.choice.domain) == ("teacher", "math")
    assert any(
        "<@U1> set this channel's persona to *teacher (math)*" in m["text"]
        for m in slack.messages(channel="C1")
    )
    assert "<#C1>: *teacher* (math)" in json.dumps(slack.home_views["U1"]["blocks"]), "Home shows the change"


async def test_an_admin_creates_a_persona_and_adds_a_schema_from_home(http_bot, slack):
    bot = await http_bot(ADMIN_USER_IDS="UADMIN")
    view = await _modal(bot, slack, "home_create_persona", "UADMIN")
    bad = await bot.action(_submission(view, "UADMIN", {"name": "Bad Name!", "prompt": "x"}))
    assert "name" in json.loads(bad.body)["errors"]
    builtin = await bot.action(_submission(view, "UADMIN", {"name": "teacher", "prompt": "x"}))
    assert "built-in" in json.loads(builtin.body)["errors"]["name"]
    ok = await bot.action(_submission(view, "UADMIN", {"name": "support", "prompt": "You help customers."}))
    assert not ok.body
    taken = await bot.action(_submission(view, "UADMIN", {"name": "support", "prompt": "Again."}))
    assert "exists already" in json.loads(taken.body)["errors"]["name"]
    await bot.idle()
    assert (await personas.get(bot.deps.core.store, "T1", "support")).prompt == "You help customers."
    assert "*support*" in json.dumps(slack.home_views["UADMIN"]["blocks"])

    view = await _modal(bot, slack, "home_add_schema", "UADMIN")
    broken = await bot.action(_submission(view, "UADMIN", {"name": "incident", "schema": "{not json"}))
    assert "schema" in json.loads(broken.body)["errors"]
    saved = await bot.action(
        _submission(
            view,
            "UADMIN",
            {"name": "incident", "schema": '{"type": "object", "properties": {"s": {"type": "string"}}}'},
        )
    )
    assert not saved.body
    assert await schemas.lookup(bot.deps.core.store, "T1", "incident") is not None


async def test_members_get_no_admin_modal_and_a_forged_submission_is_refused_and_audited(http_bot, slack):
    bot = await http_bot(ADMIN_USER_IDS="UADMIN")
    slack.users["U1"] = {"id": "U1", "is_admin": False}
    await bot.action(_click("home_create_persona", "U1"))
    await bot.idle()
    assert not slack.calls_to("views.open")
    assert any("for admins only" in m["text"] for m in slack.messages(channel="DU1"))
    forged = await bot.action(
        _submission(
            {"type": "modal", "callback_id": "home_create_persona_modal"},
            "U1",
            {"name": "evil", "prompt": "x"},
        )
    )
    assert "for admins only" in json.loads(forged.body)["errors"]["name"]
    assert await personas.get(bot.deps.core.store, "T1", "evil") is None
    entries = await audit.recent(bot.deps.core.store, "T1")
    assert any(e["action"] == "home: create persona" and not e["allowed"] for e in entries)


async def test_opening_the_messages_tab_offers_the_personas_prompts(http_bot, slack):
    bot = await http_bot()
    await bot.event(_opened("U1", tab="messages"))
    await bot.idle()
    [call] = slack.calls_to("assistant.threads.setSuggestedPrompts")
    assert call.params["channel_id"] == "DU1" and "thread_ts" not in call.params
    assert not slack.home_views
