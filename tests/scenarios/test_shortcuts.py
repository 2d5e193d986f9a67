"""Message shortcuts: "Summarize thread"."""

from __future__ import annotations

from tests.scenarios.harness import next_ts


def _shortcut(slack, *, channel: str, message: dict, key: str) -> dict:
    return {
        "type": "message_action",
        "callback_id": "summarize_thread",
        "trigger_id": f"trig-{key}",
        "action_ts": next_ts(),
        "team": {"id": "T1"},
        "channel": {"id": channel},
        "user": {"id": "U1"},
        "message": message,
        "response_url": slack.response_url(key),
    }


async def test_summarize_thread_reads_the_thread_once_and_posts_the_summary_in_it(
    http_bot, slack, openai_api
):
    bot = await http_bot()
    root = next_ts()
    slack.members["C1"] = ["UBOT", "U1", "U2"]
    slack.threads[("C1", root)] = [
        {"user": "U2", "text": "Should we move the deploy to Wednesday?", "ts": root},
        {"user": "U1", "text": "Yes, Maria agreed.", "ts": next_ts(), "thread_ts": root},
    ]
    sent = await bot.action(
        _shortcut(slack, channel="C1", message={"ts": root, "text": "Should we…"}, key="s")
    )
    assert sent.status == 200
    await bot.idle()
    request = openai_api.chat_requests()[-1]["messages"]
    said = " ".join(m["content"] for m in request)
    assert "move the deploy to Wednesday" in said and "Maria agreed" in said
    assert "Summarize this thread" in request[-1]["content"]
    [summary] = slack.messages(channel="C1", thread_ts=root)
    assert summary["text"].startswith("Echo:")
    assert len(slack.calls_to("conversations.replies")) == 1


async def test_summarize_thread_where_the_bot_is_not_tells_only_the_user(http_bot, slack, openai_api):
    bot = await http_bot()
    slack.members["C9"] = ["U1", "U2"]
    await bot.action(_shortcut(slack, channel="C9", message={"ts": next_ts(), "text": "x"}, key="n"))
    await bot.idle()
    [said] = await slack.wait_response("n")
    assert "I'm not in <#C9>" in said["text"] and said.get("response_type") == "ephemeral"
    assert not openai_api.chat_requests() and not slack.messages(channel="C9")
