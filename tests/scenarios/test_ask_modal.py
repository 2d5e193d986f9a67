"""The "Ask Threadwise about this" and "Ask Threadwise" shortcuts: one modal, checked in it."""

from __future__ import annotations

import json

from core import history, keys, usage
from tests.scenarios.harness import mention, next_ts
from tests.standins.openai_api import Reply


def _open(slack, *, callback_id: str, channel: str = "", message: dict | None = None) -> dict:
    payload = {
        "type": "message_action" if message else "shortcut",
        "callback_id": callback_id,
        "trigger_id": "trig",
        "action_ts": next_ts(),
        "team": {"id": "T1"},
        "user": {"id": "U1"},
    }
    if message:
        payload |= {"channel": {"id": channel}, "message": message, "response_url": slack.response_url("r")}
    return payload


def _block(view: dict, block_id: str) -> dict:
    return next(b for b in view["blocks"] if b.get("block_id") == block_id)


def _submit(view: dict, question: str, where: str, persona: str = "") -> dict:
    values = {
        "question": {"text": {"type": "plain_text_input", "value": question}},
        "where": {"choice": {"type": "radio_buttons", "selected_option": {"value": where}}},
    }
    if persona:
        values["persona"] = {"name": {"type": "static_select", "selected_option": {"value": persona}}}
    return {
        "type": "view_submission",
        "team": {"id": "T1"},
        "user": {"id": "U1"},
        "view": {
            **view,
            "state": {"values": values},
        },
    }


async def test_asking_about_a_message_answers_in_its_thread(http_bot, slack, openai_api):
    bot = await http_bot()
    slack.members["C1"] = ["UBOT", "U1"]
    root = next_ts()
    slack.threads[("C1", root)] = [{"user": "U2", "text": "Release is frozen until Friday.", "ts": root}]
    await bot.action(
        _open(
            slack,
            callback_id="ask_about_message",
            channel="C1",
            message={"ts": root, "text": "Release is frozen until Friday."},
        )
    )
    [opened] = slack.calls_to("views.open")
    view = opened.params["view"]
    view = json.loads(view) if isinstance(view, str) else view
    assert "Release is frozen" in str(view["blocks"][0])
    assert [o["value"] for o in _block(view, "where")["element"]["options"]] == ["thread", "ephemeral", "dm"]
    assert "teacher" in [o["value"] for o in _block(view, "persona")["element"]["options"]]
    sent = await bot.action(_submit(view, "Can I ship a hotfix?", "thread"))
    assert sent.status == 200 and not sent.body  # accepted: the modal closes
    await bot.idle()
    said = " ".join(str(m["content"]) for m in openai_api.chat_requests()[-1]["messages"])
    assert "Release is frozen until Friday" in said and "Can I ship a hotfix?" in said
    asked = openai_api.chat_requests()[-1]["messages"][-1]["content"]
    assert 'About this message: "Release is frozen until Friday."' in asked  # what "this" is
    [answer] = slack.messages(channel="C1", thread_ts=root)
    assert "Can I ship a hotfix?" in answer["text"]


async def test_an_empty_question_is_refused_inside_the_modal(http_bot, slack, openai_api):
    bot = await http_bot()
    await bot.action(_open(slack, callback_id="ask_threadwise"))
    view = slack.calls_to("views.open")[0].params["view"]
    view = json.loads(view) if isinstance(view, str) else view
    sent = await bot.action(_submit(view, "   ", "dm"))
    assert json.loads(sent.body) == {
        "response_action": "errors",
        "errors": {"question": "Ask something first."},
    }
    await bot.idle()
    assert not openai_api.chat_requests()


async def test_the_global_shortcut_answers_privately_in_a_dm(http_bot, slack, openai_api):
    bot = await http_bot()
    await bot.action(_open(slack, callback_id="ask_threadwise"))
    view = slack.calls_to("views.open")[0].params["view"]
    view = json.loads(view) if isinstance(view, str) else view
    assert [o["value"] for o in _block(view, "where")["element"]["options"]] == ["dm"]
    await bot.action(_submit(view, "What's our on-call rota?", "dm"))
    await bot.idle()
    dm = slack.calls_to("conversations.open")[0]
    assert dm.params["users"] == "U1"
    answers = [m for m in slack.messages() if m["thread_ts"] and "on-call rota" in m["text"]]
    assert answers and all(m["channel"].startswith("D") for m in slack.messages())


async def test_asking_in_a_thread_the_bot_cannot_post_in_answers_privately_and_says_why(
    http_bot, slack, openai_api
):
    bot = await http_bot()
    slack.members["C9"] = ["U1", "U2"]  # not the bot
    root = next_ts()
    await bot.action(
        _open(slack, callback_id="ask_about_message", channel="C9", message={"ts": root, "text": "x"})
    )
    view = slack.calls_to("views.open")[0].params["view"]
    view = json.loads(view) if isinstance(view, str) else view
    await bot.action(_submit(view, "What does this mean?", "thread"))
    await bot.idle()
    assert not slack.messages(channel="C9")
    asked = openai_api.chat_requests()[-1]["messages"][-1]["content"]
    assert "I'm not in <#C9>" in asked
    assert all(m["channel"].startswith("D") for m in slack.messages())


async def _opened_about(bot, slack, channel: str = "C1") -> tuple[dict, str]:
    slack.members[channel] = ["UBOT", "U1"]
    root = next_ts()
    slack.threads[(channel, root)] = [
        {"user": "U2", "text": "Release is frozen until Friday.", "ts": root},
        {"user": "U3", "text": "Even for security fixes?", "ts": next_ts()},
    ]
    await bot.action(
        _open(
            slack,
            callback_id="ask_about_message",
            channel=channel,
            message={"ts": root, "text": "Release is frozen."},
        )
    )
    view = slack.calls_to("views.open")[-1].params["view"]
    return (json.loads(view) if isinstance(view, str) else view), root


async def test_a_persona_picked_in_the_modal_answers_that_question_only(http_bot, slack, openai_api):
    bot = await http_bot()
    view, root = await _opened_about(bot, slack)
    await bot.action(_submit(view, "Explain the freeze", "thread", persona="teacher"))
    await bot.idle()
    assert "patient teacher" in openai_api.chat_requests()[-1]["messages"][0]["content"]
    await bot.event(mention("and next week?", thread_ts=root))
    await bot.idle()
    assert "patient teacher" not in openai_api.chat_requests()[-1]["messages"][0]["content"]


async def test_an_unknown_persona_is_refused_inside_the_modal(http_bot, slack, openai_api):
    bot = await http_bot()
    view, _ = await _opened_about(bot, slack)
    sent = await bot.action(_submit(view, "Explain", "thread", persona="gone"))
    assert "no longer exists" in json.loads(sent.body)["errors"]["persona"]


async def test_only_to_me_answers_ephemerally_over_the_thread_and_keeps_nothing(http_bot, slack, openai_api):
    bot = await http_bot()
    view, root = await _opened_about(bot, slack)
    openai_api.enqueue(Reply(text="Security fixes need a waiver from the release manager."))
    sent = await bot.action(_submit(view, "Can I ship a security fix?", "ephemeral"))
    assert sent.status == 200 and not sent.body
    await bot.idle()
    [shown] = slack.calls_to("chat.postEphemeral")
    assert shown.params["user"] == "U1" and shown.params["thread_ts"] == root
    assert "waiver from the release manager" in json.dumps(shown.params["blocks"])
    said = json.dumps(openai_api.chat_requests()[-1]["messages"])
    assert "Even for security fixes?" in said and "Can I ship a security fix?" in said
    assert not slack.messages(channel="C1"), "nothing posted for everyone"
    conv = keys.conversation_id("T1", "C1", root)
    assert await history.messages(bot.deps.core.store, conv) == [], "the thread's memory holds nothing of it"
    report = await usage.report(bot.deps.core.store, "T1")
    assert report.total.turns == 1, "its tokens are counted"


async def test_only_to_me_is_screened_like_any_question(http_bot, slack, openai_api):
    bot = await http_bot(MODERATION_ENABLED="true")
    view, _ = await _opened_about(bot, slack)
    await bot.action(_submit(view, "FLAGME please", "ephemeral"))
    await bot.idle()
    assert not openai_api.chat_requests()
    [shown] = slack.calls_to("chat.postEphemeral")
    assert "flagged by the content filter" in shown.params["text"]
