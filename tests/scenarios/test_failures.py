"""When something fails, the thread says what happened and nothing is lost."""

from __future__ import annotations

from core import history, keys
from core.store import start_embedded_valkey
from tests.scenarios.harness import mention, message
from tests.standins.openai_api import Reply


def _conv(event):
    return keys.conversation_id("T1", event["channel"], event.get("thread_ts") or event["ts"])


async def test_429_then_success(http_bot, slack, openai_api):
    bot = await http_bot()
    openai_api.enqueue(
        Reply(status=429, error_code="rate_limit_exceeded", retry_after=0.1), Reply(text="made it")
    )
    event = mention("hello")
    await bot.event(event)
    await bot.idle()
    assert [m["text"] for m in slack.messages(thread_ts=event["ts"])] == ["made it"]
    assert len(openai_api.chat_requests()) == 2


async def test_openai_down_gives_a_clear_error_and_keeps_the_message(http_bot, slack, openai_api):
    bot = await http_bot(OPENAI_MAX_ATTEMPTS="2")
    openai_api.enqueue(*[Reply(status=500, error_message="boom", retry_after=0.01)] * 2)
    event = mention("are you there?")
    await bot.event(event)
    await bot.idle()
    [reply] = slack.messages(thread_ts=event["ts"])
    assert "couldn't reach the AI service" in reply["text"] and "message is saved" in reply["text"]
    assert "Traceback" not in reply["text"] and "boom" not in reply["text"]
    stored = await history.messages(bot.deps.core.store, _conv(event))
    assert [m["content"] for m in stored] == ["<@U1>: are you there?"]
    # the next turn still sees the unanswered message
    await bot.event(message("hello again", thread_ts=event["ts"]))
    await bot.idle()
    sent = openai_api.chat_requests()[-1]["messages"]
    assert [m["content"] for m in sent[1:]] == ["<@U1>: are you there?", "<@U1>: hello again"]


async def test_no_retry_on_insufficient_quota(http_bot, slack, openai_api):
    bot = await http_bot()
    openai_api.enqueue(Reply(status=429, error_code="insufficient_quota", error_type="insufficient_quota"))
    event = mention("hi")
    await bot.event(event)
    await bot.idle()
    assert len(openai_api.chat_requests()) == 1
    assert "quota is used up" in slack.messages(thread_ts=event["ts"])[0]["text"]


async def test_context_length_exceeded_trims_and_tries_once_more(http_bot, slack, openai_api):
    bot = await http_bot()
    first = mention("one")
    await bot.event(first)
    await bot.idle()
    for i in range(3):
        await bot.event(message(f"more {i}", thread_ts=first["ts"]))
        await bot.idle()
    openai_api.enqueue(Reply(status=400, error_code="context_length_exceeded"), Reply(text="shorter now"))
    await bot.event(message("last", thread_ts=first["ts"]))
    await bot.idle()
    full, retried = openai_api.chat_requests()[-2:]
    assert len(retried["messages"]) < len(full["messages"])
    assert retried["messages"][-1]["content"] == "<@U1>: last"
    assert slack.messages(thread_ts=first["ts"])[-1]["text"] == "shorter now"


async def test_stream_cut_midway_keeps_partial_answer_and_says_so(http_bot, slack, openai_api):
    bot = await http_bot()
    openai_api.enqueue(Reply(text="partial answer that goes on and on", chunk_size=4, cut_after=4))
    event = mention("tell me")
    await bot.event(event)
    await bot.idle()
    [reply] = slack.messages(thread_ts=event["ts"])
    assert reply["text"].startswith("partial answ") and "cut off" in reply["text"]
    stored = await history.messages(bot.deps.core.store, _conv(event))
    assert stored[-1]["role"] == "assistant" and "interrupted" in stored[-1]["content"]


async def test_redis_stopped_gives_clear_error_then_recovers_without_bot_restart(
    env, http_bot, slack, openai_api, tmp_path
):
    server = start_embedded_valkey(tmp_path / "own-redis")
    port = server.port
    try:
        bot = await http_bot(REDIS_URL=server.connection_url)
        event = mention("before outage")
        await bot.event(event)
        await bot.idle()
        server.stop()

        during = mention("during outage")
        await bot.event(during)
        await bot.idle(timeout=20)
        [reply] = slack.messages(thread_ts=during["ts"])
        assert "memory store" in reply["text"] and "send it again" in reply["text"]

        server = start_embedded_valkey(tmp_path / "own-redis", port=port)
        await bot.event(message("after outage", thread_ts=event["ts"]))
        await bot.idle()
        sent = openai_api.chat_requests()[-1]["messages"]
        assert sent[-1]["content"] == "<@U1>: after outage"
        assert sent[1]["content"] == "<@U1>: before outage"  # persisted history survived
    finally:
        server.stop()


async def test_history_is_trimmed_to_the_budget_oldest_first(http_bot, slack, openai_api):
    bot = await http_bot(MAX_HISTORY_TOKENS="300")
    first = mention("first " + "word " * 60)
    await bot.event(first)
    await bot.idle()
    for i in range(6):
        await bot.event(message(f"msg {i} " + "word " * 60, thread_ts=first["ts"]))
        await bot.idle()
    sent = openai_api.chat_requests()[-1]["messages"]
    assert sent[0]["role"] == "system"  # always kept
    assert sent[-1]["content"].startswith("<@U1>: msg 5")
    assert not any(m["content"].startswith("<@U1>: first") for m in sent)
    from core import tokens

    assert sum(tokens.count_message(m, "gpt-4.1-mini") for m in sent[1:]) <= 300


async def test_oversized_message_is_truncated_with_a_visible_notice(http_bot, slack, openai_api):
    bot = await http_bot(MAX_HISTORY_TOKENS="500")
    event = mention("x " * 5000)
    await bot.event(event)
    await bot.idle()
    sent = openai_api.chat_requests()[-1]["messages"][-1]["content"]
    assert "message truncated" in sent
    [reply] = slack.messages(thread_ts=event["ts"])
    assert "only read the beginning" in reply["text"]


async def test_flagged_input_never_reaches_the_model(http_bot, slack, openai_api):
    bot = await http_bot(MODERATION_ENABLED="true")
    event = mention("FLAGME please")
    await bot.event(event)
    await bot.idle()
    assert openai_api.chat_requests() == []
    assert "flagged by the content filter" in slack.messages(thread_ts=event["ts"])[0]["text"]
    ok = mention("a normal question")
    await bot.event(ok)
    await bot.idle()
    assert len(openai_api.chat_requests()) == 1
