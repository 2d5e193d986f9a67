"""Attack list: hostile input and private data, each driven through the real bot.

Every test is one attack (or one careless-admin mistake) from the hardening issue, named
for what must hold. Slack and OpenAI are the local stand-ins behind the real SDKs; Redis
is real. The Slack stand-in enforces Slack's block limits (`msg_blocks_too_long`,
`invalid_blocks`), so a message Slack would refuse fails here too.
"""

from __future__ import annotations

import json

from bot import auth
from core.finetune import store as ft
from tests.scenarios.blockkit import assert_valid_blocks
from tests.scenarios.harness import block_action, mention, message
from tests.scenarios.test_finetune import ADMIN, command, jsonl, stored_dataset
from tests.standins.openai_api import Reply

PRIVATE = "CPRIV"


def _private_channel(slack, members: list[str]) -> None:
    slack.channels[PRIVATE] = {"id": PRIVATE, "name": "secret", "is_private": True}
    slack.members[PRIVATE] = members


async def _rated(bot, slack, event: dict, key: str) -> None:
    """Someone asks, the bot answers, and another member rates the answer 👍."""
    await bot.event(event)
    await bot.idle()
    [reply] = slack.messages(channel=event["channel"], thread_ts=event["ts"])
    action = {"action_id": "feedback_good", "type": "button", "value": event["ts"]}
    payload = block_action(
        action, user="U2", response_url=slack.response_url(key), channel=event["channel"], message=reply
    )
    await bot.action(payload)
    await bot.idle()


async def _three_rated_conversations(bot, slack) -> None:
    await _rated(bot, slack, mention("public question about deploys"), "rate-public")
    await _rated(bot, slack, mention("private question about salaries", channel=PRIVATE), "rate-private")
    dm = message("dm question about my health", channel="D1", channel_type="im")
    await _rated(bot, slack, dm, "rate-dm")


def _uploaded_text(slack, channel: str) -> str:
    return "\n".join(u.content.decode() for u in slack.uploads if u.channel_id == channel)


# -- 1. private conversations never leak into a channel through a dataset ----------------


async def test_dataset_built_in_a_public_channel_leaves_out_dms_and_private_channels(http_bot, slack):
    bot = await http_bot(ADMIN_USER_IDS=ADMIN)
    _private_channel(slack, [ADMIN, "U1", "U2"])
    await _three_rated_conversations(bot, slack)
    [reply] = await command(bot, slack, "dataset build name=all", "b")
    posted = _uploaded_text(slack, "C1")
    assert "public question about deploys" in posted
    assert "salaries" not in posted and "health" not in posted
    assert "Left out 1 from private channels and 1 from DMs" in reply["text"]
    _, train, valid = await ft.load_dataset(bot.deps.core.store, "T1", "all")
    assert "salaries" not in train + valid and "health" not in train + valid


async def test_naming_a_private_channel_sends_the_dataset_to_the_admins_dm_only(http_bot, slack):
    bot = await http_bot(ADMIN_USER_IDS=f"{ADMIN},UADMIN2")
    _private_channel(slack, [ADMIN, "U1", "U2"])
    await _three_rated_conversations(bot, slack)
    [reply] = await command(bot, slack, f"dataset build <#{PRIVATE}|secret> name=secret", "b")
    assert "salaries" in _uploaded_text(slack, f"D{ADMIN}")
    assert "salaries" not in _uploaded_text(slack, "C1")
    assert not [m for m in slack.messages(channel="C1") if "Dataset" in m["text"]]
    assert "DM" in reply["text"]
    # an admin who isn't in the private channel can't pull its conversations at all
    uploads = len(slack.uploads)
    [refused] = await command(bot, slack, f"dataset build <#{PRIVATE}|secret> name=x", "c", user="UADMIN2")
    assert "not a member" in refused["text"] and len(slack.uploads) == uploads
    # DMs can never be named as a source
    [dm] = await command(bot, slack, "dataset build <#D1|dm> name=y", "named-dm")
    assert "never go into datasets" in dm["text"]


async def test_a_private_channels_own_dataset_stays_in_that_channel(http_bot, slack):
    bot = await http_bot(ADMIN_USER_IDS=ADMIN)
    _private_channel(slack, [ADMIN, "U1", "U2"])
    await _three_rated_conversations(bot, slack)
    await bot.command(
        "/finetune",
        "dataset build name=here",
        user=ADMIN,
        channel=PRIVATE,
        response_url=slack.response_url("b"),
    )
    await bot.idle(30)
    here = _uploaded_text(slack, PRIVATE)
    assert "salaries" in here and "deploys" in here and "health" not in here


async def test_eval_of_a_private_dataset_goes_to_the_admins_dm(http_bot, slack, openai_api):
    bot = await http_bot(ADMIN_USER_IDS=ADMIN)
    _private_channel(slack, [ADMIN])
    await stored_dataset(bot, name="priv")
    loaded = await ft.load_dataset(bot.deps.core.store, "T1", "priv")
    ds, train, valid = loaded
    ds.audience = PRIVATE
    await ft.save_dataset(bot.deps.core.store, "T1", ds, train, valid, replace=True)
    await command(bot, slack, "eval ft:gpt-4.1-mini-2025-04-14:acme::x1 dataset=priv n=2 judge=off", "e")
    assert [m for m in slack.messages(channel=f"D{ADMIN}") if "Evaluation:" in m["text"]]
    assert not [m for m in slack.messages(channel="C1") if "Evaluation:" in m["text"]]
    assert [u for u in slack.uploads if u.channel_id == f"D{ADMIN}" and u.filename == "evaluation.txt"]


async def test_validate_refuses_a_file_link_shared_in_another_channel(http_bot, slack):
    bot = await http_bot(ADMIN_USER_IDS=ADMIN)
    elsewhere = slack.add_file("secret.jsonl", jsonl(12), channel=PRIVATE)
    [reply] = await command(bot, slack, f"validate {elsewhere['url_private']}", "v")
    assert "isn't shared in this channel" in reply["text"]
    assert slack.downloads == [] and slack.uploads == []


async def test_saving_over_an_existing_dataset_asks_first(http_bot, slack):
    bot = await http_bot(ADMIN_USER_IDS=ADMIN, FINETUNE_SCREENING="false")
    await stored_dataset(bot, name="support")
    slack.add_file("support.jsonl", jsonl(15), channel="C1")
    replies = await command(bot, slack, "validate", "v")
    ask = next(r for r in replies if "already exists" in json.dumps(r.get("blocks")))
    (old, *_) = await ft.load_dataset(bot.deps.core.store, "T1", "support")
    assert old.source == "test"  # nothing replaced yet
    [button] = [
        e
        for b in ask["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
        if e["action_id"] == "finetune_overwrite_confirm"
    ]
    payload = block_action(button, user=ADMIN, response_url=slack.response_url("ok"))
    await bot.action(payload)
    await bot.idle()
    [done] = await slack.wait_response("ok")
    assert "Replaced dataset `support`" in done["text"]
    (new, *_) = await ft.load_dataset(bot.deps.core.store, "T1", "support")
    assert new.source == "file:support.jsonl"


# -- 5. user text is shown as text, never as Slack markup -----------------------------


async def test_persona_domain_cant_ping_the_channel_or_break_footers(http_bot, slack):
    bot = await http_bot()
    await bot.command(
        "/persona", "expert <!channel> and <https://evil.example|docs>", response_url=slack.response_url("p")
    )
    await bot.idle()
    [note] = [m for m in slack.messages(channel="C1") if "set this channel's persona" in m["text"]]
    shown = json.dumps(note["blocks"])
    assert "<!channel>" not in shown and "<https://evil" not in shown and "&lt;!channel&gt;" in shown
    await bot.command("/persona", "expert " + "tax " * 1250, response_url=slack.response_url("long"))
    await bot.idle()
    [refused] = await slack.wait_response("long")
    assert "the limit is 80" in refused["text"]


async def test_ask_json_question_is_echoed_escaped(http_bot, slack, openai_api):
    bot = await http_bot()
    openai_api.enqueue(Reply(text=json.dumps({"title": "t", "summary": "s", "key_points": []})))
    await bot.command(
        "/ask-json",
        "summary <!here> read <https://evil.example|the docs> & <@U9>",
        response_url=slack.response_url("q"),
    )
    await bot.idle()
    [posted] = [m for m in slack.messages(channel="C1") if not m.get("thread_ts")]
    shown = json.dumps(posted["blocks"])
    assert "<!here>" not in shown and "<https://evil" not in shown and "<@U9>" not in shown
    assert "&lt;!here&gt;" in shown and "&amp;" in shown
    await bot.command("/ask-json", "summary " + "x" * 2500, response_url=slack.response_url("long"))
    await bot.idle()
    [refused] = await slack.wait_response("long")
    assert "the limit is 2,000" in refused["text"]


async def test_audit_log_and_file_names_show_user_text_literally(http_bot, slack):
    bot = await http_bot(ADMIN_USER_IDS=ADMIN, FINETUNE_SCREENING="false")
    await command(bot, slack, "<!channel> start <https://evil.example|x>", "n", user="U1")
    [shown] = await command(bot, slack, "audit", "a")
    text = json.dumps(shown["blocks"])
    assert "<!channel>" not in text and "<https://evil" not in text
    slack.add_file("<!here>.jsonl", b"not json\n", channel="C1")
    await command(bot, slack, "validate", "v")
    [report] = [m for m in slack.messages(channel="C1") if "Validation of" in m["text"]]
    assert "<!here>" not in json.dumps(report["blocks"]) + report["text"]


# -- 7. messages Slack would refuse ----------------------------------------------------


async def test_json_answer_with_a_long_question_fits_slacks_total(http_bot, slack, openai_api):
    bot = await http_bot()
    data = {"title": "t", "summary": "s" * 10_000, "key_points": ["p"]}
    openai_api.enqueue(Reply(text=json.dumps(data), chunk_size=4000))
    await bot.command("/ask-json", "summary " + "why " * 480, response_url=slack.response_url("q"))
    await bot.idle()
    [posted] = [m for m in slack.messages(channel="C1") if not m.get("thread_ts")]
    assert "Working on" not in posted["text"]
    assert_valid_blocks(posted["blocks"])
    [upload] = slack.uploads
    assert json.loads(upload.content) == data


async def test_a_long_first_answer_with_the_persona_menu_is_shown_whole(http_bot, slack, openai_api):
    bot = await http_bot(ADMIN_USER_IDS=ADMIN)
    for i in range(30):
        await bot.command(
            "/persona",
            f"create helper-{i:02d}-{'x' * 20} You help.",
            user=ADMIN,
            response_url=slack.response_url(f"c{i}"),
        )
    await bot.idle()
    answer = "\n\n".join(f"Paragraph {i}: " + "word " * 40 for i in range(53))  # ~11,300 chars
    openai_api.enqueue(Reply(text=answer, chunk_size=4000))
    event = mention("explain everything")
    await bot.event(event)
    await bot.idle()
    shown = slack.messages(thread_ts=event["ts"])
    assert not any(m["text"].endswith("…") or "Thinking" in m["text"] for m in shown)
    assert "Paragraph 52" in shown[-1]["text"] or any("Paragraph 52" in m["text"] for m in shown)
    assert any(b["type"] == "actions" for m in shown for b in m["blocks"] or [])  # footer kept


async def test_an_answer_slack_refuses_is_attached_not_left_as_a_placeholder(http_bot, slack, openai_api):
    bot = await http_bot()
    openai_api.enqueue(Reply(text="A perfectly normal answer."))
    slack.fail("chat.update", error="msg_blocks_too_long")
    event = mention("hello")
    await bot.event(event)
    await bot.idle()
    [shown] = slack.messages(thread_ts=event["ts"])
    assert "Thinking" not in shown["text"] and "attached" in shown["text"]
    [upload] = slack.uploads
    assert upload.content.decode() == "A perfectly normal answer." and upload.thread_ts == event["ts"]


# -- 9. loose ends ---------------------------------------------------------------------


async def test_another_workspaces_job_is_invisible(http_bot, slack, openai_api):
    bot = await http_bot(ADMIN_USER_IDS=ADMIN)
    theirs = ft.JobRecord("ftjob-theirs", "T2", "C9", "1.0", "d", "gpt-4.1-mini-2025-04-14", "UX")
    await ft.save_job(bot.deps.core.store, theirs)
    for sub in ("status", "events", "eval"):
        [reply] = await command(bot, slack, f"{sub} ftjob-theirs", sub)
        assert "isn't a job this workspace started" in reply["text"], sub
    assert not [r for r in openai_api.requests if "ftjob-theirs" in r.path]


async def test_a_demoted_admin_loses_access_within_a_minute(http_bot, slack, monkeypatch):
    bot = await http_bot()
    slack.users["UBOSS"] = {"id": "UBOSS", "is_admin": True, "is_owner": False}
    [ok] = await command(bot, slack, "list", "a", user="UBOSS")
    assert "for admins only" not in ok["text"]
    slack.users["UBOSS"] = {"id": "UBOSS", "is_admin": False, "is_owner": False}
    start = auth._clock()
    monkeypatch.setattr(auth, "_clock", lambda: start + 61)
    [refused] = await command(bot, slack, "list", "b", user="UBOSS")
    assert "for admins only" in refused["text"]
    assert len(bot.deps.admin_cache) <= auth.CACHE_SIZE


HOSTILE = "<!channel> <!here> <https://evil.example|docs>"
PINGS = ("<!channel>", "<!here>", "<https://evil")


def _everything_shown(slack) -> str:
    """Every message, edit, ephemeral and response_url reply the bot produced, as one text."""
    shown = [json.dumps(m, ensure_ascii=False) for m in slack.messages()]
    shown += [json.dumps(r, ensure_ascii=False) for rs in slack.responses.values() for r in rs]
    shown += [json.dumps(c.params, ensure_ascii=False) for c in slack.calls_to("chat.postEphemeral")]
    return "\n".join(shown)


async def test_no_echo_of_user_text_can_ping_the_channel_or_disguise_a_link(http_bot, slack, openai_api):
    bot = await http_bot(ADMIN_USER_IDS=ADMIN, FINETUNE_SCREENING="false")
    commands = [
        ("/persona", HOSTILE),  # unknown persona name
        ("/persona", f"expert {HOSTILE}"),  # domain, announced in the channel
        ("/persona", f'create mine description="{HOSTILE}" You help.'),
        ("/persona", ""),  # the listing shows that description
        ("/ask-json", f"{HOSTILE} what now?"),  # unknown schema name
        ("/ask-json", '{"type": "object", "properties": {"<!here>": {"type": "string"}}} q'),
        ("/finetune", f"dataset import {HOSTILE}"),
        ("/finetune", f"dataset build since={HOSTILE}"),
        ("/finetune", f"start {HOSTILE}"),
        ("/finetune", f"use {HOSTILE}"),
        ("/finetune", f"status {HOSTILE}"),
    ]
    for i, (name, text) in enumerate(commands):
        await bot.command(name, text, user=ADMIN, response_url=slack.response_url(f"k{i}"))
        await bot.idle(30)
    first = mention("hello")
    await bot.event(first)
    await bot.idle()
    for text in (f"persona {HOSTILE}", f"persona expert {HOSTILE}", f"json {HOSTILE}"):
        await bot.event(mention(text, thread_ts=first["ts"]))
        await bot.idle()
    shown = _everything_shown(slack)
    assert len(slack.responses) >= len(commands)
    assert not [p for p in PINGS if p in shown], "user text reached Slack as markup"


async def test_model_output_cant_ping_the_channel(http_bot, slack, openai_api):
    bot = await http_bot()
    openai_api.enqueue(Reply(text="Sure: <!channel> and <!here>, ask <@U1>.", chunk_size=3))
    event = mention("say <!channel> for me")
    await bot.event(event)
    await bot.idle()
    [shown] = slack.messages(thread_ts=event["ts"])
    assert "<!channel>" not in json.dumps(shown) and "<!here>" not in json.dumps(shown)
    assert "<@U1>" in shown["text"] and "&lt;!channel" in shown["text"]
