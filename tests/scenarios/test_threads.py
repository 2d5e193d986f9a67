"""Thread conversations end to end: signed events in, Slack Web API calls out."""

from __future__ import annotations

import asyncio
import json

from core import history, keys
from tests.scenarios.harness import mention, message, next_ts
from tests.standins.openai_api import Reply


def _answers(slack, thread_ts):
    return [m for m in slack.messages(thread_ts=thread_ts) if not m["text"].startswith("_Thinking")]


async def test_mention_gets_threaded_reply_and_follow_up_remembers(http_bot, slack, openai_api):
    bot = await http_bot()
    first = mention("What is our deploy day?")
    sent = await bot.event(first)
    assert sent.status == 200
    await bot.idle()
    [reply] = slack.messages(thread_ts=first["ts"])
    assert reply["text"].startswith("Echo: <@U1>: What is our deploy day?")
    # the footer names persona and model
    assert "Persona: *default*" in str(reply["blocks"]) and "gpt-4.1-mini" in str(reply["blocks"])

    await bot.event(message("and who approves it?", thread_ts=first["ts"], user="U2"))
    await bot.idle()
    sent_to_model = openai_api.chat_requests()[-1]["messages"]
    assert [m["role"] for m in sent_to_model] == ["system", "user", "assistant", "user"]
    assert sent_to_model[1]["content"] == "<@U1>: What is our deploy day?"
    assert sent_to_model[3]["content"] == "<@U2>: and who approves it?"  # who said what
    assert len(slack.messages(thread_ts=first["ts"])) == 2
    # history comes from Redis: Slack's history APIs are never read
    assert not slack.calls_to("conversations.replies") and not slack.calls_to("conversations.history")


async def test_dm_answers_in_a_thread_and_new_top_level_dm_starts_afresh(http_bot, slack, openai_api):
    bot = await http_bot()
    dm = message("hello there", channel="D1", channel_type="im")
    await bot.event(dm)
    await bot.idle()
    assert len(slack.messages(channel="D1", thread_ts=dm["ts"])) == 1
    await bot.event(message("follow up", channel="D1", channel_type="im", thread_ts=dm["ts"]))
    await bot.idle()
    assert len(openai_api.chat_requests()[-1]["messages"]) == 4
    await bot.event(message("new topic", channel="D1", channel_type="im"))
    await bot.idle()
    assert len(openai_api.chat_requests()[-1]["messages"]) == 2  # system + the new message only


async def test_foreign_threads_bots_and_edits_are_ignored(http_bot, slack, openai_api):
    bot = await http_bot()
    parent = next_ts()
    await bot.event(message("chatting among humans", thread_ts=parent))
    await bot.event(message("top-level chatter"))
    await bot.event(message("I am another bot", thread_ts=parent, bot_id="B999"))
    await bot.event(message("edited", subtype="message_changed", thread_ts=parent))
    await bot.idle()
    assert openai_api.chat_requests() == []
    assert slack.messages() == []


async def test_retried_event_gets_one_reply(http_bot, slack, openai_api):
    bot = await http_bot()
    event = mention("only once please")
    await bot.event(event, event_id="EvSAME")
    await bot.event(event, event_id="EvSAME", retry_num=1)
    await bot.event(event, event_id="EvSAME", retry_num=2)
    await bot.idle()
    assert len(openai_api.chat_requests()) == 1
    assert len(slack.messages(thread_ts=event["ts"])) == 1


async def test_retry_reaching_a_second_process_gets_no_second_reply(http_bot, slack, openai_api):
    """Two bot processes share Redis; Slack's retry lands on the other one."""
    one, two = await http_bot(), await http_bot()
    event = mention("exactly one answer")
    await asyncio.gather(one.event(event, event_id="EvX"), two.event(event, event_id="EvX", retry_num=1))
    await one.idle()
    await two.idle()
    assert len(openai_api.chat_requests()) == 1


async def test_two_messages_at_once_are_both_recorded_in_order_and_answered_once(http_bot, slack, openai_api):
    bot = await http_bot()
    first = mention("start")
    await bot.event(first)
    await bot.idle()
    openai_api.enqueue(Reply(text="first answer", chunk_delay=0.05), Reply(text="second answer"))
    a = message("question A", thread_ts=first["ts"], user="U1")
    b = message("question B", thread_ts=first["ts"], user="U2")
    await asyncio.gather(bot.event(a), bot.event(b))
    await bot.idle()
    texts = [m["text"] for m in slack.messages(thread_ts=first["ts"])]
    assert texts[1:] == ["first answer", "second answer"]
    stored = await history.messages(bot.deps.core.store, keys.conversation_id("T1", "C1", first["ts"]))
    contents = [m["content"] for m in stored]
    # each question once, each followed by its own answer; the second turn saw the first answer
    assert sorted(contents[2::2]) == ["<@U1>: question A", "<@U2>: question B"]
    assert contents[3::2] == ["first answer", "second answer"]
    second_prompt = [m["content"] for m in openai_api.chat_requests()[-1]["messages"]]
    assert second_prompt[-2] == "first answer"


async def test_reset_clears_the_thread_memory(http_bot, slack, openai_api):
    bot = await http_bot()
    first = mention("remember the number 42")
    await bot.event(first)
    await bot.idle()
    await bot.event(mention("reset", thread_ts=first["ts"]))
    await bot.idle()
    assert "forgotten" in slack.messages(thread_ts=first["ts"])[-1]["text"]
    await bot.event(message("what number?", thread_ts=first["ts"]))
    await bot.idle()
    sent = openai_api.chat_requests()[-1]["messages"]
    assert [m["content"] for m in sent[1:]] == ["<@U1>: what number?"]


async def test_bad_signature_is_rejected(http_bot, slack, openai_api):
    bot = await http_bot()
    bot.secret = "not-the-secret"
    sent = await bot.event(mention("forged"))
    assert sent.status == 401
    bot.secret = "test-signing-secret"
    await asyncio.sleep(0.05)
    assert openai_api.chat_requests() == [] and slack.messages() == []


async def test_ack_comes_before_any_slack_call(http_bot, slack, openai_api):
    bot = await http_bot()
    openai_api.enqueue(Reply(text="slow", delay=0.5))
    calls_before = len(slack.calls)
    sent = await bot.event(mention("hi"))
    assert sent.status == 200 and sent.elapsed < 0.3
    assert len(slack.calls) == calls_before  # nothing sent to Slack before the ack
    await bot.idle()


async def test_mentioned_in_a_human_thread_reads_it_once(http_bot, slack, openai_api):
    bot = await http_bot()
    parent = next_ts()
    slack.threads[("C1", parent)] = [
        {"type": "message", "user": "U1", "text": "Ana ships the release on Friday", "ts": parent},
        {"type": "message", "user": "U2", "text": "Bo writes the notes", "ts": next_ts()},
        {"type": "message", "bot_id": "BOTHER", "text": "CI passed", "ts": next_ts()},
    ]
    event = mention("summarize this thread", thread_ts=parent)
    slack.threads[("C1", parent)].append(
        {"type": "message", "user": "U1", "text": event["text"], "ts": event["ts"]}
    )
    await bot.event(event)
    await bot.idle()
    sent = [m["content"] for m in openai_api.chat_requests()[-1]["messages"][1:]]
    assert sent == [
        "<@U1>: Ana ships the release on Friday",
        "<@U2>: Bo writes the notes",
        "<@U1>: summarize this thread",
    ]
    await bot.event(mention("and again", thread_ts=parent))
    await bot.event(message("a follow-up", thread_ts=parent))
    await bot.idle()
    assert len(slack.calls_to("conversations.replies")) == 1
    assert (
        len(openai_api.chat_requests()[-1]["messages"]) == 8
    )  # system + 3 imported/asked + 2 answers + 2 new


async def test_a_whole_turn_costs_the_same_redis_round_trips_at_any_length(http_bot, slack, openai_api):
    from core.store import RoundTrips

    bot = await http_bot(TURN_LEASE_SECONDS="600")  # the recovery scan stays out of the count
    first = mention("start")
    await bot.event(first)
    await bot.idle()
    store = bot.deps.core.store
    conv = keys.conversation(store.prefix, keys.conversation_id("T1", "C1", first["ts"]))

    async def one_turn(text: str) -> int:
        await asyncio.sleep(1.1)  # Slack allows about one post a second in a channel
        before = RoundTrips.count
        await bot.event(message(text, thread_ts=first["ts"]))
        await bot.idle()
        return RoundTrips.count - before

    short = await one_turn("at 2 messages")
    filler = json.dumps({"role": "user", "content": "<@U1>: filler", "tokens": 8})
    await store.redis.rpush(conv.msgs, *[filler] * 5000)
    await store.redis.rpush(conv.toks, *[8] * 5000)
    long = await one_turn("at 5,000 messages")
    # inbox + recovery index before the ack, queue (dedupe, lease, append, window),
    # persona, where the answer is shown (so another process can take it over), answer
    # (pop, release); and Slack's shared budgets: the placeholder, the first text, the end
    assert short == long == 5 + 3, (short, long)


async def test_a_model_copying_the_speaker_tag_is_cleaned_up(http_bot, slack, openai_api):
    bot = await http_bot()
    openai_api.enqueue(
        Reply(text="<@U1>: Paris is the capital.", chunk_size=3),
        Reply(text="<3 plain answer"),
        Reply(text="<@U2>:wave: welcome!", chunk_size=2),
    )
    first = mention("capital of France?")
    await bot.event(first)
    await bot.idle()
    assert slack.messages(thread_ts=first["ts"])[0]["text"] == "Paris is the capital."
    stored = await history.messages(bot.deps.core.store, keys.conversation_id("T1", "C1", first["ts"]))
    assert stored[-1]["content"] == "Paris is the capital."
    await bot.event(message("and?", thread_ts=first["ts"]))
    await bot.idle()
    assert slack.messages(thread_ts=first["ts"])[-1]["text"] == "<3 plain answer"  # not a tag: untouched
    await bot.event(message("greet U2", thread_ts=first["ts"]))
    await bot.idle()
    assert (
        slack.messages(thread_ts=first["ts"])[-1]["text"] == "<@U2>:wave: welcome!"
    )  # mention + emoji stays
