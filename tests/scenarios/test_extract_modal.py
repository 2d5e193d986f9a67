"""The "Extract JSON" shortcut: a schema picked or pasted, checked in the modal."""

from __future__ import annotations

import json

from tests.scenarios.harness import next_ts
from tests.standins.openai_api import Reply


def _open(slack, root: str) -> dict:
    return {
        "type": "message_action",
        "callback_id": "extract_json",
        "trigger_id": "trig",
        "action_ts": next_ts(),
        "team": {"id": "T1"},
        "user": {"id": "U1"},
        "channel": {"id": "C1"},
        "message": {"ts": root, "text": "Ana will send the deck by Friday."},
        "response_url": slack.response_url("r"),
    }


def _submit(view: dict, *, named: str = "", pasted: str = "") -> dict:
    values = {
        "named": {"name": {"type": "static_select", "selected_option": {"value": named} if named else None}},
        "pasted": {"schema": {"type": "plain_text_input", "value": pasted or None}},
        "question": {"text": {"type": "plain_text_input", "value": None}},
    }
    return {
        "type": "view_submission",
        "team": {"id": "T1"},
        "user": {"id": "U1"},
        "view": {**view, "state": {"values": values}},
    }


async def _modal(bot, slack) -> tuple[dict, str]:
    root = next_ts()
    slack.members["C1"] = ["UBOT", "U1"]
    slack.threads[("C1", root)] = [{"user": "U2", "text": "Ana will send the deck by Friday.", "ts": root}]
    await bot.action(_open(slack, root))
    view = slack.calls_to("views.open")[-1].params["view"]
    return (json.loads(view) if isinstance(view, str) else view), root


async def test_a_named_schema_extracts_validated_json_into_the_thread(http_bot, slack, openai_api):
    bot = await http_bot()
    view, root = await _modal(bot, slack)
    names = [o["value"] for o in view["blocks"][0]["element"]["options"]]
    assert "action_items" in names
    openai_api.enqueue(
        Reply(
            text=json.dumps(
                {"items": [{"task": "Send the deck", "owner": "Ana", "due": None, "priority": "high"}]}
            )
        )
    )
    sent = await bot.action(_submit(view, named="action_items"))
    assert sent.status == 200 and not sent.body
    await bot.idle()
    assert "Ana will send the deck" in " ".join(
        str(m["content"]) for m in openai_api.chat_requests()[-1]["messages"]
    )
    [answer] = slack.messages(channel="C1", thread_ts=root)
    assert "Send the deck" in str(answer["blocks"])


async def test_a_bad_pick_is_refused_inside_the_modal(http_bot, slack, openai_api):
    bot = await http_bot()
    view, _ = await _modal(bot, slack)
    neither = await bot.action(_submit(view))
    assert json.loads(neither.body)["errors"] == {"named": "Pick a schema, or paste one (not both)."}
    broken = await bot.action(_submit(view, pasted='{"type": "object", "properties": '))
    assert (
        json.loads(broken.body)["response_action"] == "errors"
        and "pasted" in json.loads(broken.body)["errors"]
    )
    await bot.idle()
    assert not openai_api.chat_requests()
