"""The assistant pane: greeting, suggested prompts, title, status, and the same memory."""

from __future__ import annotations

from core import history, keys
from tests.scenarios.harness import message, next_ts


def _thread_started(channel: str, thread_ts: str, *, looking_at: str = "C1") -> dict:
    return {
        "type": "assistant_thread_started",
        "assistant_thread": {
            "user_id": "U1",
            "channel_id": channel,
            "thread_ts": thread_ts,
            "context": {"channel_id": looking_at, "team_id": "T1"},
        },
        "event_ts": next_ts(),
    }


def _in_pane(text: str, channel: str, thread_ts: str) -> dict:
    return message(text, channel=channel, channel_type="im", thread_ts=thread_ts)


async def test_opening_the_pane_greets_with_the_active_persona_and_suggests_prompts(http_bot, slack):
    bot = await http_bot()
    await bot.command("/persona", "teacher", user="U7", channel="D1", response_url=slack.response_url("p"))
    await slack.wait_response("p")
    thread_ts = next_ts()
    await bot.event(_thread_started("D1", thread_ts))
    await bot.idle()
    [greeting] = slack.messages(channel="D1", thread_ts=thread_ts)
    assert "answering as *teacher*" in greeting["text"]
    [prompts] = slack.calls_to("assistant.threads.setSuggestedPrompts")
    sent = prompts.params["prompts"]
    assert 3 <= len(sent) <= 4 and sent[0]["title"] == "Explain step by step"
    assert not [c for c in slack.calls if c.failed]


async def test_a_question_in_the_pane_titles_the_thread_shows_a_status_and_is_remembered(
    http_bot, slack, openai_api
):
    bot = await http_bot(STREAMING_MODE="update")
    thread_ts = next_ts()
    await bot.event(_thread_started("D1", thread_ts, looking_at="C42"))
    await bot.idle()
    first = "What   is our deploy\nprocess for the payments service and who signs off on it every week?"
    await bot.event(_in_pane(first, "D1", thread_ts))
    await bot.idle()
    await bot.event(_in_pane("and on holidays?", "D1", thread_ts))
    await bot.idle()

    [title] = slack.calls_to("assistant.threads.setTitle")  # the first question only
    assert title.params["title"].startswith("What is our deploy") and len(title.params["title"]) <= 80
    statuses = slack.calls_to("assistant.threads.setStatus")
    assert len(statuses) == 2 and statuses[0].params["status"] == "is thinking…"
    # the pane's thread has the same Redis memory as any thread
    sent = openai_api.chat_requests()[-1]["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
    conv = keys.conversation_id("T1", "D1", thread_ts)
    meta = await history.get_meta(bot.deps.core.store, conv)
    assert meta["pane"] == "1" and meta["context_channel"] == "C42"


async def test_a_changed_context_is_remembered_with_the_thread(http_bot, slack):
    bot = await http_bot()
    thread_ts = next_ts()
    await bot.event(_thread_started("D1", thread_ts, looking_at="C1"))
    changed = _thread_started("D1", thread_ts, looking_at="C9")
    changed["type"] = "assistant_thread_context_changed"
    await bot.event(changed)
    await bot.idle()
    meta = await history.get_meta(bot.deps.core.store, keys.conversation_id("T1", "D1", thread_ts))
    assert meta["context_channel"] == "C9"


async def test_a_plain_dm_thread_gets_no_title_or_status(http_bot, slack, openai_api):
    bot = await http_bot(STREAMING_MODE="update")
    await bot.event(message("hello", channel="D2", channel_type="im"))
    await bot.idle()
    assert not slack.calls_to("assistant.threads.setTitle")
    assert not slack.calls_to("assistant.threads.setStatus")


async def test_the_channel_in_view_is_read_once_and_drawn_on_when_the_bot_is_in_it(
    http_bot, slack, openai_api
):
    bot = await http_bot(STREAMING_MODE="update")
    slack.members["C42"] = ["UBOT", "U1"]
    slack.history["C42"] = [
        {"user": "U2", "text": "Deploys are on Tuesdays, Maria signs off.", "ts": "1.0"},
        {"user": "U3", "text": "Holiday weeks skip the deploy.", "ts": "2.0"},
    ]
    thread_ts = next_ts()
    await bot.event(_thread_started("D1", thread_ts, looking_at="C42"))
    await bot.idle()
    [greeting] = slack.messages(channel="D1", thread_ts=thread_ts)
    assert "I can see the latest 2 messages of <#C42>" in str(greeting["blocks"])
    await bot.event(_in_pane("who signs off deploys?", "D1", thread_ts))
    await bot.idle()
    await bot.event(_in_pane("and in holiday weeks?", "D1", thread_ts))
    await bot.idle()
    assert len(slack.calls_to("conversations.history")) == 1  # read once, not per turn
    system = openai_api.chat_requests()[-1]["messages"][0]["content"]
    assert "looking at channel <#C42>" in system and "Maria signs off" in system
    assert system.index("Deploys are on Tuesdays") < system.index("Holiday weeks")  # oldest first


async def test_a_channel_the_bot_is_not_in_is_never_read_and_the_user_is_told(http_bot, slack, openai_api):
    bot = await http_bot(STREAMING_MODE="update")
    slack.members["C77"] = ["U1", "U2"]
    slack.history["C77"] = [{"user": "U2", "text": "secret plans", "ts": "1.0"}]
    thread_ts = next_ts()
    await bot.event(_thread_started("D1", thread_ts, looking_at="C77"))
    await bot.idle()
    [greeting] = slack.messages(channel="D1", thread_ts=thread_ts)
    assert "I'm not in <#C77>" in str(greeting["blocks"])
    await bot.event(_in_pane("what are the plans?", "D1", thread_ts))
    await bot.idle()
    assert "secret plans" not in str(openai_api.chat_requests())


async def test_admins_set_a_personas_pane_prompts_and_can_restore_the_defaults(http_bot, slack):
    bot = await http_bot(ADMIN_USER_IDS="UADMIN")
    await bot.command(
        "/persona",
        "prompts default Deploy day | When do we deploy? ; Runbook | Where is the <runbook>?",
        user="UADMIN",
        response_url=slack.response_url("set"),
    )
    [said] = await slack.wait_response("set")
    assert "*Runbook*: Where is the &lt;runbook&gt;?" in said["text"]
    await bot.event(_thread_started("D1", next_ts()))
    await bot.idle()
    [call] = slack.calls_to("assistant.threads.setSuggestedPrompts")
    assert call.params["prompts"] == [
        {"title": "Deploy day", "message": "When do we deploy?"},
        {"title": "Runbook", "message": "Where is the <runbook>?"},
    ]
    # a member can't; a bad list is explained; no list restores the defaults
    await bot.command("/persona", "prompts default A | b", user="U1", response_url=slack.response_url("no"))
    assert "admin" in (await slack.wait_response("no"))[0]["text"].lower()
    await bot.command(
        "/persona", "prompts default just a title", user="UADMIN", response_url=slack.response_url("bad")
    )
    assert "Title | message" in (await slack.wait_response("bad"))[0]["text"]
    await bot.command("/persona", "prompts default", user="UADMIN", response_url=slack.response_url("reset"))
    await slack.wait_response("reset")
    await bot.event(_thread_started("D1", next_ts()))
    await bot.idle()
    assert slack.calls_to("assistant.threads.setSuggestedPrompts")[-1].params["prompts"][0]["title"] == (
        "Summarize a topic"
    )
