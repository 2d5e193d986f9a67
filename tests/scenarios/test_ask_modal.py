"""The "Ask Threadwise about this" and "Ask Threadwise" shortcuts: one modal, checked in it."""

from __future__ import annotations

import json

from tests.scenarios.harness import next_ts


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


def _submit(view: dict, question: str, where: str) -> dict:
    return {
        "type": "view_submission",
        "team": {"id": "T1"},
        "user": {"id": "U1"},
        "view": {
            **view,
            "state": {
                "values": {
                    "question": {"text": {"type": "plain_text_input", "value": question}},
                    "where": {"choice": {"type": "radio_buttons", "selected_option": {"value": where}}},
                }
            },
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
    assert [o["value"] for o in view["blocks"][2]["element"]["options"]] == ["thread", "dm"]
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
    assert [o["value"] for o in view["blocks"][1]["element"]["options"]] == ["dm"]
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
