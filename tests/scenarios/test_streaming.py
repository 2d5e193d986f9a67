"""Answers stream into Slack: natively when possible, by throttled edits otherwise."""

from __future__ import annotations

import asyncio
import json

from tests.scenarios.harness import mention
from tests.standins.openai_api import Reply


async def test_native_streaming_with_footer(http_bot, slack, openai_api):
    bot = await http_bot(STREAMING_MODE="auto")
    openai_api.enqueue(Reply(text="**Bold** answer " * 40))
    event = mention("stream it")
    await bot.event(event)
    await bot.idle()
    assert slack.calls_to("chat.startStream") and slack.calls_to("chat.stopStream")
    start = slack.calls_to("chat.startStream")[0].params
    assert start["recipient_user_id"] == "U1" and start["recipient_team_id"] == "T1"
    [reply] = slack.messages(thread_ts=event["ts"])
    assert reply["kind"] == "stream" and reply["text"] == "**Bold** answer " * 40
    assert "Persona: *default*" in str(reply["blocks"])
    assert not slack.calls_to("chat.update")


async def test_native_stream_refused_falls_back_to_edits(http_bot, slack, openai_api):
    bot = await http_bot(STREAMING_MODE="auto")
    slack.fail("chat.startStream", error="not_allowed_token_type")
    openai_api.enqueue(Reply(text="fallback text " * 40))
    event = mention("stream it")
    await bot.event(event)
    await bot.idle()
    [reply] = slack.messages(thread_ts=event["ts"])
    assert reply["kind"] == "post" and reply["text"] == ("fallback text " * 40)


async def test_update_mode_throttles_edits_to_about_one_per_second(http_bot, slack, openai_api):
    bot = await http_bot(STREAMING_MODE="update")
    openai_api.enqueue(Reply(text="tick " * 100, chunk_size=5, chunk_delay=0.03))  # ~3 s of streaming
    event = mention("slowly")
    await bot.event(event)
    await bot.idle()
    updates = slack.calls_to("chat.update")
    intermediate = updates[:-1]
    assert 2 <= len(intermediate) <= 4  # ~1 per second, then the final edit
    assert all(b.at - a.at >= 0.9 for a, b in zip(intermediate, intermediate[1:], strict=False))
    assert intermediate[0].params["text"].endswith(" …")  # partial text while streaming
    assert slack.messages(thread_ts=event["ts"])[0]["text"] == "tick " * 100


async def test_short_native_answer_survives_a_failed_stop(http_bot, slack, openai_api):
    bot = await http_bot(STREAMING_MODE="auto")
    slack.fail("chat.stopStream", error="message_not_in_streaming_state")
    openai_api.enqueue(Reply(text="Short and sweet."))
    event = mention("quick one")
    await bot.event(event)
    await bot.idle()
    shown = "".join(m["text"] for m in slack.messages(thread_ts=event["ts"]))
    assert "Short and sweet." in shown
    assert "Persona: *default*" in json.dumps([m["blocks"] for m in slack.messages(thread_ts=event["ts"])])


async def test_long_answer_continues_in_new_messages_instead_of_failing(http_bot, slack, openai_api):
    bot = await http_bot(STREAMING_MODE="update")
    text = "".join(f"line {i:05d} of a very long answer\n" for i in range(1200))  # ~37k chars
    openai_api.enqueue(Reply(text=text, chunk_size=2000))
    event = mention("write a novel")
    await bot.event(event)
    await bot.idle()
    parts = slack.messages(thread_ts=event["ts"])
    assert len(parts) >= 4
    for part in parts:
        assert len(part["text"]) <= 12_000
        assert all(len(b.get("text", "")) <= 12_000 for b in part["blocks"] if b["type"] == "markdown")
    assert "".join(p["text"] for p in parts) == text
    assert "Persona" in str(parts[-1]["blocks"]) and "Persona" not in str(parts[0]["blocks"])


async def test_native_stream_breaking_midway_continues_in_a_new_message(http_bot, slack, openai_api):
    bot = await http_bot(STREAMING_MODE="auto")
    slack.fail("chat.appendStream", error="message_not_in_streaming_state")
    text = "".join(f"sentence {i} of the answer. " for i in range(80))
    openai_api.enqueue(Reply(text=text, chunk_size=50))
    event = mention("stream then break")
    await bot.event(event)
    await bot.idle()
    parts = slack.messages(thread_ts=event["ts"])
    assert [p["kind"] for p in parts] == ["stream", "post"]
    assert "".join(p["text"] for p in parts) == text  # nothing lost, nothing repeated


async def test_the_first_text_shows_at_once_not_after_the_edit_interval(http_bot, slack, openai_api):
    bot = await http_bot(STREAMING_MODE="update")
    openai_api.enqueue(Reply(text="first words, then the rest slowly", chunk_size=12, chunk_delay=0.5))
    event = mention("how fast do you start?")
    await bot.event(event)
    await bot.idle()
    [placeholder] = slack.calls_to("chat.postMessage")
    first_text = slack.calls_to("chat.update")[0]
    assert first_text.params["text"].startswith("first words")
    # The model's first token comes one chunk delay (0.5 s) after the placeholder; it is
    # shown within 0.3 s of that, where waiting out the edit interval took a full second.
    assert first_text.at - placeholder.at < 0.5 + 0.3


async def test_a_busy_workspace_stays_within_slacks_tiers_and_every_answer_is_whole(
    http_bot, slack, openai_api
):
    """Two processes, 14 answers at once, Slack enforcing its tiers: no 429 reaches the bot,
    native streams stop at the Tier 2 budget, and the rest fall back to rarer edits."""
    slack.enforce_rate_limits()
    a = await http_bot(STREAMING_MODE="auto")
    b = await http_bot(STREAMING_MODE="auto")
    text = "streamed " * 60
    openai_api.default = lambda body: Reply(text=text, chunk_size=20, chunk_delay=0.05)  # ~1.5 s
    events = [mention(f"question {i}", channel=f"C{i % 7}") for i in range(14)]
    await asyncio.gather(*((a if i % 2 else b).event(e) for i, e in enumerate(events)))
    await a.idle(timeout=30)
    await b.idle(timeout=30)

    assert slack.rate_limited_count() == 0, [c.method for c in slack.rate_limited]
    for event in events:
        [shown] = slack.messages(thread_ts=event["ts"])
        assert shown["text"].strip() == text.strip(), event["text"]
    assert len(slack.calls_to("chat.startStream")) <= 3  # Tier 2's burst, shared by both
    edits = len([c for c in slack.calls_to("chat.update") if c.params["text"].endswith(" …")])
    assert edits <= 8  # intermediate edits gave way to every answer's final one


async def test_long_native_streams_send_fewer_larger_appends_when_the_budget_runs_low(
    http_bot, slack, openai_api
):
    slack.enforce_rate_limits()
    bot = await http_bot(STREAMING_MODE="auto")
    text = "".join(f"line {i} of a long streamed answer.\n" for i in range(160))  # ~5,700 chars
    openai_api.default = lambda body: Reply(text=text, chunk_size=40, chunk_delay=0.01)
    events = [mention(f"long {i}", channel=f"C{i}") for i in range(3)]
    await asyncio.gather(*(bot.event(e) for e in events))
    await bot.idle(timeout=30)
    assert slack.rate_limited_count() == 0, [c.method for c in slack.rate_limited]
    assert len(slack.calls_to("chat.startStream")) == 3
    for event in events:
        assert "".join(m["text"] for m in slack.messages(thread_ts=event["ts"])).strip() == text.strip()
    # 3 x 5,700 characters in 256-character appends would be ~66 calls, past Tier 4's burst
    assert len(slack.calls_to("chat.appendStream")) < 66


async def test_when_edits_run_out_answers_arrive_whole_in_one_post(http_bot, slack, openai_api):
    """Tier 3 allows a burst of about 8 edits: the answers past it show no placeholder and
    are posted once, complete, instead of waiting minutes for chat.update."""
    slack.enforce_rate_limits()
    bot = await http_bot(STREAMING_MODE="update")
    openai_api.default = lambda body: Reply(text="a complete answer " * 20, chunk_size=30, chunk_delay=0.02)
    events = [mention(f"q{i}", channel=f"C{i % 6}") for i in range(24)]
    await asyncio.gather(*(bot.event(e) for e in events))
    await bot.idle(timeout=30)
    assert slack.rate_limited_count() == 0, [c.method for c in slack.rate_limited]
    edited = {c.params["ts"] for c in slack.calls_to("chat.update")}
    quiet = 0
    for event in events:
        [shown] = slack.messages(thread_ts=event["ts"])
        assert shown["text"].strip() == ("a complete answer " * 20).strip()
        quiet += shown["ts"] not in edited
    assert quiet >= 24 - 8 - 2  # only the edit budget's burst (and a refill) got placeholders


async def test_a_quiet_answer_slack_refuses_is_attached_as_a_file(http_bot, slack, openai_api):
    slack.enforce_rate_limits()
    bot = await http_bot(STREAMING_MODE="update")
    openai_api.default = lambda body: Reply(text="fine answer")
    events = [mention(f"q{i}", channel=f"C{i}") for i in range(9)]  # the 9th is past Tier 3's burst
    await asyncio.gather(*(bot.event(e) for e in events[:8]))
    await bot.idle(timeout=30)
    slack.fail("chat.postMessage", error="invalid_blocks")
    await bot.event(events[8])
    await bot.idle(timeout=30)
    [shown] = slack.messages(thread_ts=events[8]["ts"])
    assert "attached" in shown["text"]
    assert [u.content.decode() for u in slack.uploads] == ["fine answer"]
