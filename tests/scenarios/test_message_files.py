"""Files shared with a question: small text files are read, the rest are named and why."""

from __future__ import annotations

from tests.scenarios.harness import mention, message


async def test_a_text_file_is_read_into_the_question_and_the_rest_are_named(http_bot, slack, openai_api):
    bot = await http_bot()
    notes = slack.add_file("notes.md", b"# Deploy\nTuesdays, Maria signs off.", "C1")
    photo = slack.add_file("photo.png", b"\x89PNG...", "C1")
    archive = slack.add_file("logs.zip", b"PK...", "C1")
    event = mention("what does the file say?")
    event.update(subtype="file_share", files=[notes, photo, archive])
    await bot.event(event)
    await bot.idle()
    asked = openai_api.chat_requests()[-1]["messages"][-1]["content"][0]["text"]  # then the image
    assert "[file notes.md]" in asked and "Tuesdays, Maria signs off." in asked
    [answer] = slack.messages(thread_ts=event["ts"])
    footer = str(answer["blocks"])
    assert "skipped `photo.png`" not in footer  # it was shown to the model
    assert "skipped `logs.zip`: only text and code files are read" in footer


async def test_a_message_that_is_only_a_file_is_answered(http_bot, slack, openai_api):
    bot = await http_bot()
    data = slack.add_file("data.csv", b"month,sales\njan,10\nfeb,12\n", "D1")
    event = message("", channel="D1", channel_type="im", subtype="file_share", files=[data])
    await bot.event(event)
    await bot.idle()
    assert "feb,12" in openai_api.chat_requests()[-1]["messages"][-1]["content"]
    assert slack.messages(channel="D1", thread_ts=event["ts"])


async def test_a_big_text_file_is_not_read_and_the_user_is_told(http_bot, slack, openai_api):
    bot = await http_bot()
    big = slack.add_file("dump.txt", b"x" * (150 * 1024), "C1")
    event = mention("look at this")
    event.update(subtype="file_share", files=[big])
    await bot.event(event)
    await bot.idle()
    assert "xxxx" not in openai_api.chat_requests()[-1]["messages"][-1]["content"]
    assert "text files are read up to 100 KB" in str(slack.messages(thread_ts=event["ts"])[0]["blocks"])


async def test_a_file_not_hosted_by_slack_is_never_fetched(http_bot, slack, openai_api, fetch_target):
    bot = await http_bot()
    forged = slack.add_file("notes.txt", b"hello", "C1")
    forged = {**forged, "url_private": fetch_target.url, "url_private_download": fetch_target.url}
    event = mention("read it")
    event.update(subtype="file_share", files=[forged])
    await bot.event(event)
    await bot.idle()
    assert fetch_target.hits == []
    assert "I only download Slack files" in str(slack.messages(thread_ts=event["ts"])[0]["blocks"])


async def test_an_image_is_shown_to_a_model_that_can_see_and_kept_as_a_marker(http_bot, slack, openai_api):
    import base64

    from core import history, keys

    bot = await http_bot()
    png = b"\x89PNG\r\n\x1a\n-fake-image-bytes"
    photo = slack.add_file("chart.png", png, "C1")
    event = mention("what does this chart show?")
    event.update(subtype="file_share", files=[photo])
    await bot.event(event)
    await bot.idle()
    asked = openai_api.chat_requests()[-1]["messages"][-1]["content"]
    assert asked[0]["type"] == "text" and "[image chart.png]" in asked[0]["text"]
    assert asked[1]["image_url"]["url"] == "data:image/png;base64," + base64.b64encode(png).decode()
    stored = await history.messages(bot.deps.core.store, keys.conversation_id("T1", "C1", event["ts"]))
    assert "[image chart.png]" in stored[0]["content"] and "base64" not in stored[0]["content"]


async def test_an_image_for_a_model_that_cannot_see_is_named_under_the_answer(http_bot, slack, openai_api):
    bot = await http_bot(OPENAI_MODEL="gpt-3.5-turbo")
    photo = slack.add_file("chart.png", b"\x89PNG", "C1")
    event = mention("and this?")
    event.update(subtype="file_share", files=[photo])
    await bot.event(event)
    await bot.idle()
    assert isinstance(openai_api.chat_requests()[-1]["messages"][-1]["content"], str)
    assert "`gpt-3.5-turbo` can't see images" in str(slack.messages(thread_ts=event["ts"])[0]["blocks"])
