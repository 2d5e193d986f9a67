"""Slack's limits for apps distributed outside the Marketplace (SLACK_INSTALL_KIND=
distributed): conversations.replies and .history once a minute per workspace, 15
messages a call. The bot reads at most that, says what it left out, and finds a rated
answer's thread without reading Slack at all."""

from __future__ import annotations

import json

from tests.scenarios.harness import mention, next_ts, reaction
from tests.standins.openai_api import Reply


def _long_thread(slack, channel: str, n: int) -> str:
    root = next_ts()
    slack.threads[(channel, root)] = [
        {"user": "U2", "text": f"message {i}", "ts": root if i == 0 else next_ts()} for i in range(n)
    ]
    return root


async def test_joining_a_long_thread_reads_one_page_of_15_and_says_what_was_left_out(
    http_bot, slack, openai_api
):
    bot = await http_bot(SLACK_INSTALL_KIND="distributed")
    root = _long_thread(slack, "C1", 40)
    openai_api.enqueue(Reply(text="summary"))
    await bot.event(mention("sum this up", thread_ts=root))
    await bot.idle()
    [read] = slack.calls_to("conversations.replies")
    assert int(read.params["limit"]) == 15
    said = json.dumps(openai_api.chat_requests()[-1]["messages"])
    assert "message 14" in said and "message 15" not in said
    [answer] = slack.messages(thread_ts=root)
    assert "read only the first 15 messages" in json.dumps(answer["blocks"])

    other = _long_thread(slack, "C1", 3)
    openai_api.enqueue(Reply(text="second"))
    await bot.event(mention("and this one?", thread_ts=other))
    await bot.idle()
    assert len(slack.calls_to("conversations.replies")) == 1, "one read a minute per workspace"
    [answer] = slack.messages(thread_ts=other)
    assert "read a thread once a minute" in json.dumps(answer["blocks"])


async def test_an_internal_app_reads_the_whole_thread(http_bot, slack, openai_api):
    bot = await http_bot()
    root = _long_thread(slack, "C1", 40)
    await bot.event(mention("sum this up", thread_ts=root))
    await bot.idle()
    said = json.dumps(openai_api.chat_requests()[-1]["messages"])
    assert "message 39" in said
    assert "read only the first" not in json.dumps(slack.messages(thread_ts=root)[0]["blocks"])


async def test_a_reaction_on_an_answer_finds_its_thread_without_reading_slack(http_bot, slack, openai_api):
    bot = await http_bot(SLACK_INSTALL_KIND="distributed")
    question = mention("how do I deploy?")
    await bot.event(question)
    await bot.idle()
    [reply] = slack.messages(thread_ts=question["ts"])
    await bot.event(reaction("+1", on_ts=reply["ts"]))
    await bot.idle()
    assert not slack.calls_to("conversations.replies")
    from core import feedback, keys

    conv = keys.conversation_id("T1", "C1", question["ts"])
    _, good, _ = await feedback.good_replies(bot.deps.core.store, conv)
    assert len(good) == 1, "the rating reached the answer's thread"
