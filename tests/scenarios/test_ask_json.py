"""Structured JSON answers: /ask-json in a channel, and `json` in a thread."""

from __future__ import annotations

import json

from tests.scenarios.blockkit import assert_valid_blocks
from tests.scenarios.harness import mention, message
from tests.standins.openai_api import Reply

ITEMS = {"items": [{"task": "Ship v2", "owner": "<@U1>", "due": "2026-12-01", "priority": "high"}]}


async def _ask_json(bot, slack, text, key="r", **kw):
    await bot.command("/ask-json", text, response_url=slack.response_url(key), **kw)
    await bot.idle()


async def test_named_schema_answer_is_posted_strict_and_opens_a_thread(http_bot, slack, openai_api):
    bot = await http_bot()
    openai_api.enqueue(Reply(text=json.dumps(ITEMS)))
    await _ask_json(bot, slack, "action_items What came out of the standup?")
    request = openai_api.chat_requests()[-1]
    fmt = request["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    assert fmt["json_schema"]["name"] == "action_items"
    assert request["messages"][-1]["content"].endswith("What came out of the standup?")
    [posted] = [m for m in slack.messages(channel="C1") if not m.get("thread_ts")]
    assert_valid_blocks(posted["blocks"])
    text = json.dumps(posted["blocks"], ensure_ascii=False)
    assert "What came out of the standup?" in text and "<@U1> asked" in text
    assert '\\"task\\": \\"Ship v2\\"' in text  # pretty-printed JSON
    assert "**Ship v2** — owner: <@U1> · due: 2026-12-01 · priority: high" in text  # readable rendering

    # a follow-up in the answer's thread continues the conversation
    await bot.event(message("who owns it?", thread_ts=posted["ts"]))
    await bot.idle()
    sent = openai_api.chat_requests()[-1]["messages"]
    assert "Ship v2" in sent[-2]["content"] and sent[-1]["content"] == "<@U1>: who owns it?"


async def test_inline_schema_is_normalized_and_says_so(http_bot, slack, openai_api):
    bot = await http_bot()
    openai_api.enqueue(Reply(text=json.dumps({"city": "Paris", "country": None})))
    schema = '{"type": "object", "properties": {"city": {"type": "string"}, "country": {"type": "string"}}, "required": ["city"]}'
    await _ask_json(bot, slack, f"{schema} Where is the Louvre?")
    sent = openai_api.chat_requests()[-1]["response_format"]["json_schema"]["schema"]
    assert sent["additionalProperties"] is False and sent["required"] == ["city", "country"]
    assert sent["properties"]["country"]["type"] == ["string", "null"]
    [posted] = slack.messages(channel="C1")
    assert "normalized for strict mode" in json.dumps(posted["blocks"])


async def test_bad_input_gets_clear_ephemeral_errors(http_bot, slack, openai_api):
    bot = await http_bot()
    big = '{"type": "object", "description": "' + "x" * 17000 + '", "properties": {}}'
    cases = {
        '{"type": "object", "properties": {"a": {"type": "string"},}} q': "isn't valid JSON",
        '{"type": "object", "properties": {"a": {"oneOf": [{"type": "string"}]}}} q': "`$.a`: `oneOf` isn't supported",
        '{"type": "object", "additionalProperties": true, "properties": {}} q': "`additionalProperties` must be false",
        '{"type": "array", "items": {"type": "string"}} q': "root must have",
        '{"type": "object", "properties": {"a": {"type": "strng"}}} q': "Not a valid JSON Schema",
        big + " q": "limit is 16,384",
        "action_items": "Please add a question",
        "nosuchschema what?": "don't know a schema called `nosuchschema`",
    }
    for i, (text, expected) in enumerate(cases.items()):
        await _ask_json(bot, slack, text, key=f"k{i}")
        [reply] = await slack.wait_response(f"k{i}")
        assert reply["response_type"] == "ephemeral"
        assert expected in reply["text"], (text[:60], reply["text"])
    assert openai_api.chat_requests() == []  # none of them reached the model


async def test_refusal_is_shown_as_a_refusal(http_bot, slack, openai_api):
    bot = await http_bot()
    openai_api.enqueue(Reply(refusal="I can't help with that request."))
    await _ask_json(bot, slack, "summary something dubious")
    [posted] = slack.messages(channel="C1")
    assert "declined to answer: I can't help with that request." in posted["text"]


async def test_invalid_json_gets_one_repair_then_succeeds(http_bot, slack, openai_api):
    bot = await http_bot()
    openai_api.enqueue(Reply(text='{"items": [{"task": "x"'), Reply(text=json.dumps(ITEMS)))
    await _ask_json(bot, slack, "action_items list them")
    repair = openai_api.chat_requests()[-1]["messages"]
    assert "not usable" in repair[-1]["content"] and repair[-2]["role"] == "assistant"
    [posted] = slack.messages(channel="C1")
    assert "Ship v2" in json.dumps(posted["blocks"]) and "repaired once" in json.dumps(posted["blocks"])


async def test_schema_mismatch_twice_gives_a_clear_error(http_bot, slack, openai_api):
    bot = await http_bot()
    openai_api.enqueue(Reply(text='{"items": "nope"}'), Reply(text='{"items": [{"task": 1}]}'))
    await _ask_json(bot, slack, "action_items list them")
    assert len(openai_api.chat_requests()) == 2
    [posted] = slack.messages(channel="C1")
    assert "didn't produce valid JSON" in posted["text"] and "$.items[0]" in posted["text"]


async def test_truncated_json_is_repaired(http_bot, slack, openai_api):
    bot = await http_bot()
    openai_api.enqueue(Reply(text='{"items": [', finish_reason="length"), Reply(text=json.dumps(ITEMS)))
    await _ask_json(bot, slack, "action_items list them")
    assert "cut off at the length limit" in openai_api.chat_requests()[-1]["messages"][-1]["content"]


async def test_server_without_json_schema_falls_back_to_json_object(http_bot, slack, openai_api):
    bot = await http_bot()
    openai_api.json_schema_supported = False
    openai_api.enqueue(Reply(text=json.dumps(ITEMS)))
    await _ask_json(bot, slack, "action_items list them")
    rejected, accepted = openai_api.chat_requests()[-2:]
    assert rejected["response_format"]["type"] == "json_schema"
    assert accepted["response_format"] == {"type": "json_object"}
    assert '"additionalProperties": false' in accepted["messages"][0]["content"]  # schema in the prompt
    [posted] = slack.messages(channel="C1")
    assert "used json_object + validation" in json.dumps(posted["blocks"])


async def test_large_answer_is_attached_as_a_file(http_bot, slack, openai_api):
    bot = await http_bot()
    many = {
        "items": [
            {"task": f"task {i} " + "y" * 80, "owner": None, "due": None, "priority": "low"}
            for i in range(200)
        ]
    }
    openai_api.enqueue(Reply(text=json.dumps(many), chunk_size=4000))
    await _ask_json(bot, slack, "action_items everything")
    [upload] = slack.uploads
    assert upload.filename == "action_items.json" and json.loads(upload.content) == many
    [posted] = [m for m in slack.messages(channel="C1") if not m.get("thread_ts")]
    assert upload.thread_ts == posted["ts"]
    assert_valid_blocks(posted["blocks"])
    assert "attached as a file" in json.dumps(posted["blocks"])


async def test_json_in_a_thread_answers_over_the_thread(http_bot, slack, openai_api):
    bot = await http_bot()
    first = mention("We agreed: Ana ships the release on Friday, Bo writes the notes.")
    await bot.event(first)
    await bot.idle()
    openai_api.enqueue(Reply(text=json.dumps(ITEMS)))
    await bot.event(mention("json action_items", thread_ts=first["ts"]))
    await bot.idle()
    request = openai_api.chat_requests()[-1]
    contents = [m["content"] for m in request["messages"]]
    assert any("Ana ships the release" in c for c in contents)
    assert contents[-1].endswith("Extract the action items from this conversation.")
    reply = slack.messages(thread_ts=first["ts"])[-1]
    assert "Ship v2" in json.dumps(reply["blocks"])


async def test_workspace_schemas_are_managed_by_admins(http_bot, slack, openai_api):
    bot = await http_bot(ADMIN_USER_IDS="UADMIN")
    schema = '{"type": "object", "properties": {"risk": {"type": "string"}}}'
    await _ask_json(bot, slack, f"schema add risks {schema}", key="no", user="U1")
    assert "for admins only" in (await slack.wait_response("no"))[0]["text"]
    await _ask_json(bot, slack, f"schema add risks {schema}", key="yes", user="UADMIN")
    assert "Saved schema `risks`" in (await slack.wait_response("yes"))[0]["text"]
    await _ask_json(bot, slack, "schema list", key="list")
    assert "`risks`" in json.dumps((await slack.wait_response("list"))[0]["blocks"])
    openai_api.enqueue(Reply(text='{"risk": "low"}'))
    await _ask_json(bot, slack, "risks How risky is Friday?")
    assert openai_api.chat_requests()[-1]["response_format"]["json_schema"]["name"] == "risks"
    await _ask_json(bot, slack, "schema delete risks", key="del", user="UADMIN")
    assert "Deleted schema `risks`" in (await slack.wait_response("del"))[0]["text"]


async def test_bot_not_in_channel_says_how_to_fix_it(http_bot, slack, openai_api):
    bot = await http_bot()
    slack.fail("chat.postMessage", error="not_in_channel")
    await _ask_json(bot, slack, "summary hi", key="nic")
    assert "/invite @Threadwise" in (await slack.wait_response("nic"))[0]["text"]


async def test_flagged_question_says_so_instead_of_hanging(http_bot, slack, openai_api):
    bot = await http_bot(MODERATION_ENABLED="true")
    await _ask_json(bot, slack, "summary FLAGME something")
    [posted] = slack.messages(channel="C1")
    assert "flagged by the content filter" in posted["text"]
    assert openai_api.chat_requests() == []


async def test_llama_cpp_style_500_for_json_schema_falls_back_without_retrying(http_bot, slack, openai_api):
    """llama.cpp's server answers json_schema with a 500 request-validation error."""
    bot = await http_bot()
    message = (
        "1 validation error: {'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), "
        "'msg': \"Input should be 'text' or 'json_object'\", 'input': 'json_schema'}"
    )
    openai_api.enqueue(Reply(status=500, error_message=message), Reply(text=json.dumps(ITEMS)))
    await _ask_json(bot, slack, "action_items list them")
    first, second = openai_api.chat_requests()
    assert first["response_format"]["type"] == "json_schema"
    assert second["response_format"] == {"type": "json_object"}
    assert "Ship v2" in json.dumps(slack.messages(channel="C1")[0]["blocks"])
