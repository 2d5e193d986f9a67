"""Usage, cost and limits as members and admins see them: `/usage`, a monthly budget, a
per-person cap, prices."""

from __future__ import annotations

import json

from core import audit, usage
from tests.scenarios.blockkit import assert_valid_blocks
from tests.scenarios.harness import mention
from tests.standins.openai_api import Reply

# gpt-4.1-mini: 600 uncached x $0.40 + 400 cached x $0.10 + 500 out x $1.60 per 1M = $0.00108
PRICED = dict(usage=(1_000, 500), cached_tokens=400)


async def _ask(bot, openai_api, text="hello", **kw):
    openai_api.enqueue(Reply(text=f"answer to {text}", **PRICED))
    event = mention(text, **kw)
    await bot.event(event)
    await bot.idle()
    return event


async def _usage(bot, slack, text="", *, user="UADMIN", channel="C1", key=None):
    key = key or f"usage-{user}-{text}"
    await bot.command("/usage", text, user=user, channel=channel, response_url=slack.response_url(key))
    [reply] = await slack.wait_response(key)
    assert reply["response_type"] == "ephemeral"
    return reply


def _ephemerals(slack, user):
    return [c.params["text"] for c in slack.calls_to("chat.postEphemeral") if c.params.get("user") == user]


async def test_admins_see_the_workspaces_usage_and_cost_and_members_only_their_own(
    http_bot, slack, openai_api
):
    bot = await http_bot(ADMIN_USER_IDS="UADMIN")
    await _ask(bot, openai_api, "one", user="U1", channel="C1")
    await _ask(bot, openai_api, "two", user="U2", channel="C2")

    admin = await _usage(bot, slack)
    assert_valid_blocks(admin["blocks"])
    shown = json.dumps(admin["blocks"], ensure_ascii=False)
    assert "Usage, last 30 days" in shown
    assert "*under $0.01* estimated · 2 turns" in shown
    for who in ("<#C1>", "<#C2>", "<@U1>", "<@U2>", "`gpt-4.1-mini`", "`default`"):
        assert who in shown, who
    assert "2.0k prompt tokens (800 cached)" in shown

    member = await _usage(bot, slack, user="U1")
    assert_valid_blocks(member["blocks"])
    mine = json.dumps(member["blocks"])
    assert "Your usage" in mine and "1 turns" in mine
    assert "<@U2>" not in mine and "<#C2>" not in mine


async def test_a_monthly_budget_stops_answers_says_until_when_and_tells_admins_once(
    http_bot, slack, openai_api
):
    bot = await http_bot(ADMIN_USER_IDS="UADMIN", ADMIN_CHANNEL_IDS="CADM")
    reply = await _usage(bot, slack, "budget 0.001", channel="CADM")
    assert "the monthly budget is now $0.001" in reply["text"]
    await _ask(bot, openai_api, "first", user="U1")  # $0.00108: over the budget afterwards
    requests = len(openai_api.chat_requests())

    refused = await _ask(bot, openai_api, "second", user="U2")
    assert len(openai_api.chat_requests()) == requests, "no model call past the budget"
    [told] = _ephemerals(slack, "U2")
    assert "monthly Threadwise budget" in told and "<!date^" in told and "/usage budget" in told
    assert not slack.messages(thread_ts=refused["ts"]), "nothing posted in the channel"
    notices = [m for m in slack.messages(channel="CADM") if "monthly budget" in m["text"]]
    assert len(notices) == 1 and "monthly budget of $0.001" in notices[0]["text"]

    await _ask(bot, openai_api, "third", user="U1", thread_ts=refused["ts"])
    assert len(_ephemerals(slack, "U1")) == 1
    assert len([m for m in slack.messages(channel="CADM") if "monthly budget" in m["text"]]) == 1

    await _usage(bot, slack, "budget off", channel="CADM")
    await _ask(bot, openai_api, "fourth", user="U2", thread_ts=refused["ts"])
    last = openai_api.chat_requests()[-1]["messages"]
    asked = [m["content"] for m in last if m["role"] == "user"]
    assert any("second" in a for a in asked), "the refused question was kept in the thread"


async def test_a_per_person_limit_holds_that_person_only(http_bot, slack, openai_api):
    bot = await http_bot(ADMIN_USER_IDS="UADMIN")
    await _usage(bot, slack, "limit 1")
    await _ask(bot, openai_api, "a", user="U1")
    await _ask(bot, openai_api, "b", user="U1")
    [told] = _ephemerals(slack, "U1")
    assert "limit here is 1 per person per hour" in told
    await _ask(bot, openai_api, "c", user="U2")
    assert len(openai_api.chat_requests()) == 2


async def test_limits_come_from_the_environment_until_an_admin_changes_them(http_bot, slack, openai_api):
    bot = await http_bot(ADMIN_USER_IDS="UADMIN", USER_TURNS_PER_HOUR="1")
    await _ask(bot, openai_api, "a", user="U1")
    await _ask(bot, openai_api, "b", user="U1")
    assert len(openai_api.chat_requests()) == 1
    await _usage(bot, slack, "limit off")
    await _ask(bot, openai_api, "c", user="U1")
    assert len(openai_api.chat_requests()) == 2


async def test_members_cant_change_limits_or_prices_and_bad_values_get_a_clear_error(
    http_bot, slack, openai_api
):
    bot = await http_bot(ADMIN_USER_IDS="UADMIN")
    slack.users["U1"] = {"id": "U1", "is_admin": False}
    refused = await _usage(bot, slack, "budget 5", user="U1")
    assert "for admins only" in refused["text"]
    entries = await audit.recent(bot.deps.core.store, "T1")
    assert any(e["action"] == "/usage budget" and not e["allowed"] for e in entries)

    bad = await _usage(bot, slack, "budget lots")
    assert "positive number, or `off`" in bad["text"]
    bad_price = await _usage(bot, slack, "price gpt-4.1-mini 1 2")
    assert "three prices" in bad_price["text"]


async def test_an_admins_price_is_used_for_answers_from_then_on(http_bot, slack, openai_api):
    bot = await http_bot(ADMIN_USER_IDS="UADMIN")
    done = await _usage(bot, slack, "price gpt-4.1-mini 100 100 100")
    assert "now costs $100 input" in done["text"]
    await _ask(bot, openai_api, "priced", user="U1")  # 1,500 tokens x $100 per 1M = $0.15
    shown = json.dumps((await _usage(bot, slack, key="after"))["blocks"])
    assert "$0.15" in shown
    prices = await _usage(bot, slack, "prices")
    assert "`gpt-4.1-mini` (set by an admin): 100 / 100 / 100" in prices["text"]


async def test_an_admin_sees_their_own_usage_with_usage_me(http_bot, slack, openai_api):
    bot = await http_bot(ADMIN_USER_IDS="UADMIN")
    await _ask(bot, openai_api, "mine", user="UADMIN")
    await _ask(bot, openai_api, "theirs", user="U2", channel="C2")
    mine = json.dumps((await _usage(bot, slack, "me"))["blocks"])
    assert "Your usage" in mine and "1 turns" in mine and "<#C2>" not in mine


async def test_a_limit_must_be_a_whole_number(http_bot, slack, openai_api):
    bot = await http_bot(ADMIN_USER_IDS="UADMIN")
    bad = await _usage(bot, slack, "limit 0.5")
    assert "whole number" in bad["text"]
    assert (await usage.limits(bot.deps.core.store, "T1", usage.Limits())).user_turns_per_hour == 0
