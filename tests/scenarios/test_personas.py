"""Personas through slash commands, mentions and the reply menu."""

from __future__ import annotations

import json

from core import audit, usage
from tests.scenarios.blockkit import assert_valid_blocks
from tests.scenarios.harness import block_action, mention, message
from tests.standins.openai_api import Reply


def _system(openai_api) -> str:
    return openai_api.chat_requests()[-1]["messages"][0]["content"]


async def _ask(bot, text="hello", **kw):
    event = mention(text, **kw)
    await bot.event(event)
    await bot.idle()
    return event


async def test_persona_list_is_ephemeral_valid_block_kit(http_bot, slack):
    bot = await http_bot()
    url = slack.response_url("list")
    sent = await bot.command("/persona", "", response_url=url)
    assert sent.status == 200
    [reply] = await slack.wait_response("list")
    assert reply["response_type"] == "ephemeral"
    assert_valid_blocks(reply["blocks"])
    text = json.dumps(reply["blocks"])
    for name in ("default", "expert", "teacher", "concise", "creative", "socratic", "balanced"):
        assert f"*{name}*" in text
    assert "Active in this channel: *default*" in text


async def test_channel_persona_applies_to_new_threads_and_is_announced(http_bot, slack, openai_api):
    bot = await http_bot()
    await bot.command("/persona", "expert tax law", user="U7", response_url=slack.response_url("set"))
    await slack.wait_response("set")
    note = [m for m in slack.messages(channel="C1") if "set this channel's persona" in m["text"]]
    assert note and "<@U7>" in note[0]["text"] and "expert (tax law)" in note[0]["text"]
    event = await _ask(bot)
    assert "expert in tax law" in _system(openai_api)
    reply = slack.messages(thread_ts=event["ts"])[0]
    assert "Persona: *expert (tax law)*" in json.dumps(reply["blocks"])


async def test_thread_beats_channel_beats_workspace(http_bot, slack, openai_api):
    bot = await http_bot(ADMIN_USER_IDS="UADMIN")
    await bot.command("/persona", "workspace concise", user="UADMIN", response_url=slack.response_url("ws"))
    await slack.wait_response("ws")
    await _ask(bot, channel="C2")
    assert "Be brief and direct" in _system(openai_api)

    await bot.command("/persona", "teacher", channel="C2", response_url=slack.response_url("ch"))
    await slack.wait_response("ch")
    thread = await _ask(bot, channel="C2")
    assert "patient teacher" in _system(openai_api)

    await bot.event(mention("persona socratic", channel="C2", thread_ts=thread["ts"]))
    await bot.idle()
    assert (
        "switched this thread to *socratic*"
        in slack.messages(channel="C2", thread_ts=thread["ts"])[-1]["text"]
    )
    await bot.event(message("why is the sky blue?", channel="C2", thread_ts=thread["ts"]))
    await bot.idle()
    sent = openai_api.chat_requests()[-1]["messages"]
    assert "Socratic" in sent[0]["content"]
    assert [m["role"] for m in sent[1:]] == ["user", "assistant", "user"]  # history kept
    # a new thread in the same channel still follows the channel
    await _ask(bot, channel="C2")
    assert "patient teacher" in _system(openai_api)


async def test_unknown_persona_shows_the_list(http_bot, slack):
    bot = await http_bot()
    await bot.command("/persona", "pirate", response_url=slack.response_url("u"))
    [reply] = await slack.wait_response("u")
    assert "don't know a persona called `pirate`" in reply["text"]
    assert "*teacher*" in json.dumps(reply["blocks"])


async def test_custom_persona_crud_needs_an_admin(http_bot, slack, openai_api):
    bot = await http_bot()
    slack.users["UBOSS"] = {"id": "UBOSS", "name": "boss", "is_admin": True, "is_owner": False}
    create = 'support model=gpt-4o-mini temperature=0.2 constraint="Always cite the KB article" You answer support tickets for Acme.'

    await bot.command("/persona", f"create {create}", user="U1", response_url=slack.response_url("no"))
    [refused] = await slack.wait_response("no")
    assert "for admins only" in refused["text"]
    log = await audit.recent(bot.deps.core.store, "T1")
    assert log[0]["user"] == "U1" and log[0]["allowed"] is False and log[0]["action"] == "/persona create"

    await bot.command("/persona", f"create {create}", user="UBOSS", response_url=slack.response_url("yes"))
    [created] = await slack.wait_response("yes")
    assert "Created persona *support*" in created["text"]

    await bot.command("/persona", "support", response_url=slack.response_url("use"))
    await slack.wait_response("use")
    await _ask(bot)
    request = openai_api.chat_requests()[-1]
    assert request["model"] == "gpt-4o-mini" and request["temperature"] == 0.2
    assert request["messages"][0]["content"].startswith("You answer support tickets for Acme.")
    assert "- Always cite the KB article" in request["messages"][0]["content"]

    await bot.command(
        "/persona",
        "edit support temperature=0.7 Be terse.",
        user="UBOSS",
        response_url=slack.response_url("e"),
    )
    await slack.wait_response("e")
    await _ask(bot)
    request = openai_api.chat_requests()[-1]
    assert request["temperature"] == 0.7 and request["messages"][0]["content"].startswith("Be terse.")

    await bot.command("/persona", "delete support", user="U1", response_url=slack.response_url("d1"))
    assert "for admins only" in (await slack.wait_response("d1"))[0]["text"]
    await bot.command("/persona", "delete support", user="UBOSS", response_url=slack.response_url("d2"))
    assert "Deleted persona *support*" in (await slack.wait_response("d2"))[0]["text"]
    event = await _ask(bot)  # the channel's choice is gone: falls back, and says so
    assert "You answer support" not in _system(openai_api)
    assert "no longer exists" in json.dumps(slack.messages(thread_ts=event["ts"])[0]["blocks"])


async def test_bad_custom_personas_are_refused_clearly(http_bot, slack):
    bot = await http_bot(ADMIN_USER_IDS="UADMIN")
    cases = {
        "create Bad!Name hello": "not a valid persona name",
        "create teacher hi": "built-in",
        "create long " + "x" * 4100: "limit is 4000",
        "create hot temperature=9 hi": "between 0 and 2",
        "create lonely": "Usage",
    }
    for i, (text, expected) in enumerate(cases.items()):
        await bot.command("/persona", text, user="UADMIN", response_url=slack.response_url(f"c{i}"))
        [reply] = await slack.wait_response(f"c{i}")
        assert expected in reply["text"], (text, reply["text"])


async def test_first_reply_has_a_persona_menu_that_switches_the_thread(http_bot, slack, openai_api):
    bot = await http_bot()
    event = await _ask(bot, "first question")
    first = slack.messages(thread_ts=event["ts"])[0]
    assert_valid_blocks(first["blocks"])
    menu = [b for b in first["blocks"] if b.get("block_id") == "persona_menu"][0]
    assert "teacher" in [o["value"] for o in menu["elements"][0]["options"]]
    payload = block_action(
        {
            "action_id": "persona_select",
            "block_id": "persona_menu",
            "type": "static_select",
            "selected_option": {"text": {"type": "plain_text", "text": "teacher"}, "value": "teacher"},
        },
        user="U3",
        response_url=slack.response_url("menu"),
        message={"ts": first["ts"], "thread_ts": event["ts"], "text": first["text"]},
    )
    sent = await bot.action(payload)
    assert sent.status == 200
    await bot.idle()
    assert "<@U3> switched this thread to *teacher*" in slack.messages(thread_ts=event["ts"])[-1]["text"]
    await bot.event(message("explain DNS", thread_ts=event["ts"]))
    await bot.idle()
    assert "patient teacher" in _system(openai_api)
    # later replies carry no menu
    last = slack.messages(thread_ts=event["ts"])[-1]
    assert not [b for b in last["blocks"] if b.get("block_id") == "persona_menu"]


async def test_expired_response_url_falls_back_to_post_ephemeral(http_bot, slack):
    bot = await http_bot()
    url = slack.response_url("old")
    slack.expire_response_url("old")
    await bot.command("/persona", "pirate", user="U5", response_url=url)
    [call] = await slack.wait_for("chat.postEphemeral")
    assert call.params["user"] == "U5" and "pirate" in call.params["text"]


async def test_optimize_posts_scored_variants_and_only_an_admin_click_adopts(http_bot, slack, openai_api):
    bot = await http_bot(ADMIN_USER_IDS="UADMIN")
    await bot.command(
        "/persona", "create support You answer tickets.", user="UADMIN", response_url=slack.response_url("c")
    )
    await slack.wait_response("c")
    scores = {"clarity": 6, "specificity": 4, "conciseness": 8, "completeness": 5}
    better = {"clarity": 9, "specificity": 9, "conciseness": 7, "completeness": 9}
    openai_api.enqueue(
        Reply(
            text=json.dumps(
                {
                    "original_scores": scores,
                    "variants": [
                        {
                            "prompt": "You resolve Acme support tickets: restate, diagnose, give steps.",
                            "scores": better,
                        },
                        {"prompt": "Answer tickets politely and precisely.", "scores": scores},
                    ],
                }
            )
        )
    )
    await bot.command("/persona", "optimize support", user="UADMIN", response_url=slack.response_url("o"))
    replies = await slack.wait_response("o", count=2)
    card = replies[-1]["blocks"]
    assert_valid_blocks(card)
    assert openai_api.chat_requests()[-1]["response_format"]["json_schema"]["strict"] is True
    buttons = [b["accessory"] for b in card if b.get("accessory", {}).get("type") == "button"]
    assert len(buttons) == 2  # the original has none
    assert "total 34/40" in json.dumps(card) and "total 23/40" in json.dumps(card)
    counted = (await usage.report(bot.deps.core.store, "T1")).by["persona"]
    assert counted["support (optimize)"].turns == 1, "the optimization's tokens are counted"

    def click(user: str, key: str) -> dict:
        action = {"action_id": buttons[0]["action_id"], "type": "button", "value": buttons[0]["value"]}
        return block_action(action, user=user, response_url=slack.response_url(key))

    await bot.action(click("U1", "nope"))
    await bot.idle()
    assert "for admins only" in (await slack.wait_response("nope"))[0]["text"]
    await bot.action(click("UADMIN", "adopt"))
    await bot.idle()
    assert "Adopted variant 1" in (await slack.wait_response("adopt"))[0]["text"]
    await bot.command("/persona", "support", response_url=slack.response_url("use"))
    await slack.wait_response("use")
    await _ask(bot)
    assert _system(openai_api).startswith("You resolve Acme support tickets")


async def test_existing_threads_keep_their_persona_when_the_channel_changes(http_bot, slack, openai_api):
    bot = await http_bot()
    await bot.command("/persona", "teacher", response_url=slack.response_url("a"))
    await slack.wait_response("a")
    thread = await _ask(bot, "first")
    await bot.command("/persona", "concise", response_url=slack.response_url("b"))
    await slack.wait_response("b")
    await bot.event(message("more please", thread_ts=thread["ts"]))
    await bot.idle()
    assert "patient teacher" in _system(openai_api)  # the old thread kept its persona
    await _ask(bot, "new thread")
    assert "Be brief and direct" in _system(openai_api)  # new threads follow the channel


async def test_retried_persona_command_confirms_once(http_bot, slack, openai_api):
    bot = await http_bot()
    thread = await _ask(bot, "first")
    event = mention("persona teacher", thread_ts=thread["ts"])
    await bot.event(event, event_id="EvP")
    await bot.event(event, event_id="EvP", retry_num=1)
    await bot.idle()
    notes = [m for m in slack.messages(thread_ts=thread["ts"]) if "switched this thread" in m["text"]]
    assert len(notes) == 1


async def test_a_persona_on_a_reasoning_model_sends_reasoning_effort_not_temperature(
    http_bot, slack, openai_api
):
    bot = await http_bot(ADMIN_USER_IDS="UADMIN")
    await bot.command(
        "/persona",
        "create thinker model=gpt-5-mini temperature=0.2 reasoning=low You think hard before answering.",
        user="UADMIN",
        response_url=slack.response_url("c"),
    )
    await slack.wait_response("c")
    await bot.command("/persona", "thinker", user="UADMIN", response_url=slack.response_url("s"))
    await slack.wait_response("s")
    await bot.event(mention("why is the sky blue?"))
    await bot.idle()
    request = openai_api.chat_requests()[-1]
    assert request["model"] == "gpt-5-mini" and request["reasoning_effort"] == "low"
    assert "temperature" not in request  # gpt-5 models reject it
    await bot.command(
        "/persona", "create bad reasoning=extreme x", user="UADMIN", response_url=slack.response_url("b")
    )
    assert "reasoning must be one of" in (await slack.wait_response("b"))[0]["text"]
