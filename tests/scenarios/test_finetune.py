"""Fine-tuning from Slack, driven as Slack drives it, against the OpenAI stand-in."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time

from core import audit, usage
from core.finetune import store as ft
from tests.scenarios.blockkit import assert_valid_blocks
from tests.scenarios.harness import HttpBot, block_action, mention, message, reaction

ADMIN = "UADMIN"


def example(i: int) -> dict:
    return {
        "messages": [
            {"role": "system", "content": "You are Acme's support assistant."},
            {"role": "user", "content": f"How do I reset password number {i}?"},
            {"role": "assistant", "content": f"Open Settings, choose Security, then Reset ({i})."},
        ]
    }


def jsonl(n: int) -> bytes:
    return ("\n".join(json.dumps(example(i)) for i in range(n)) + "\n").encode()


def button(
    action_id: str, value: str, *, user: str = ADMIN, key: str, slack, message: dict | None = None
) -> dict:
    action = {"action_id": action_id, "type": "button", "value": value}
    return block_action(action, user=user, response_url=slack.response_url(key), message=message)


async def command(bot, slack, text: str, key: str, *, user: str = ADMIN, count: int = 1) -> list[dict]:
    await bot.command("/finetune", text, user=user, response_url=slack.response_url(key))
    await bot.idle(30)
    return await slack.wait_response(key, count=count)


async def stored_dataset(bot, name: str = "support", n: int = 12) -> None:
    from core.finetune.datasets import to_jsonl

    examples = [example(i) for i in range(n)]
    held = 2 if n >= 10 else 0
    await ft.save_dataset(
        bot.deps.core.store,
        "T1",
        ft.Dataset(name, n - held, held, "test", ADMIN, audience=""),  # from public channels
        to_jsonl(examples[: n - held]),
        to_jsonl(examples[n - held :]) if held else "",
    )


async def wait_until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_non_admin_is_refused_and_audited(http_bot, slack, openai_api):
    bot = await http_bot(ADMIN_USER_IDS=ADMIN)
    [reply] = await command(bot, slack, "list", "r", user="U1")
    assert "for admins only" in reply["text"]
    [entry] = await audit.recent(bot.deps.core.store, "T1")
    assert entry == {**entry, "user": "U1", "action": "/finetune list", "allowed": False}
    [shown] = await command(bot, slack, "audit", "a")
    assert "/finetune list" in json.dumps(shown["blocks"]) and "⛔" in json.dumps(
        shown["blocks"], ensure_ascii=False
    )


async def test_admin_channels_restrict_where_commands_work(http_bot, slack):
    bot = await http_bot(ADMIN_USER_IDS=ADMIN, ADMIN_CHANNEL_IDS="CADMIN")
    [reply] = await command(bot, slack, "list", "r")
    assert "only work in these channels: <#CADMIN>" in reply["text"]


async def test_rated_conversations_become_a_dataset(http_bot, slack, openai_api):
    bot = await http_bot(ADMIN_USER_IDS=ADMIN)
    for i in range(12):
        event = mention(f"question {i}")
        await bot.event(event)
        await bot.idle()
        [reply] = slack.messages(thread_ts=event["ts"])
        await bot.action(
            button(
                "feedback_good",
                event["ts"],
                user="U2",
                key=f"fb{i}",
                slack=slack,
                message={"ts": reply["ts"]},
            )
        )
    bad = mention("a question answered badly")
    await bot.event(bad)
    await bot.idle()
    [reply] = slack.messages(thread_ts=bad["ts"])
    await bot.action(
        button("feedback_good", bad["ts"], user="U2", key="g", slack=slack, message={"ts": reply["ts"]})
    )
    # a 👎 reaction from someone else outweighs the 👍
    slack.threads[("C1", reply["ts"])] = [{"ts": bad["ts"], "thread_ts": bad["ts"]}]
    await bot.event(reaction("-1", on_ts=reply["ts"]))
    await bot.idle()
    assert "recorded" in (await slack.wait_response("fb0"))[0]["text"]

    [built] = await command(bot, slack, "dataset build since=7d name=team-best", "b", count=1)
    loaded = await ft.load_dataset(bot.deps.core.store, "T1", "team-best")
    assert loaded is not None
    ds, train, valid = loaded
    examples = [json.loads(line) for line in (train + valid).splitlines()]
    assert len(examples) == 12 == ds.examples + ds.validation_examples
    assert all(
        e["messages"][0]["role"] == "system" and e["messages"][-1]["role"] == "assistant" for e in examples
    )
    assert not any("answered badly" in json.dumps(e) for e in examples)
    names = [u.filename for u in slack.uploads]
    assert "team-best.jsonl" in names and "team-best-report.txt" in names
    summary = [m for m in slack.messages(channel="C1") if "Dataset `team-best`" in m["text"]][0]
    assert_valid_blocks(summary["blocks"])


async def test_malformed_file_gets_a_line_numbered_report_and_nothing_is_uploaded(
    http_bot, slack, openai_api
):
    bot = await http_bot(ADMIN_USER_IDS=ADMIN)
    broken = jsonl(11) + b'{"messages": [{"role": "user", "content": "hi"}]\n' + b"not json\n"
    slack.add_file("broken.jsonl", broken, "C1")
    [reply] = await command(bot, slack, "validate", "v")
    assert "nothing was stored or uploaded" in reply["text"]
    posted = [m for m in slack.messages(channel="C1") if "Validation of `broken.jsonl`" in m["text"]][0]
    text = json.dumps(posted["blocks"])
    assert "line 12" in text and "line 13" in text and "Not ready" in text
    report = [u for u in slack.uploads if u.filename.endswith("report.txt")][0].content.decode()
    assert "13" in report
    assert openai_api.files == {} and not [r for r in openai_api.requests if "fine_tuning" in r.path]
    assert await ft.load_dataset(bot.deps.core.store, "T1", "broken") is None


async def test_fewer_than_ten_examples_is_blocked(http_bot, slack, openai_api):
    bot = await http_bot(ADMIN_USER_IDS=ADMIN)
    await stored_dataset(bot, "tiny", n=4)
    [reply] = await command(bot, slack, "start tiny", "s")
    assert "can't be used for training" in reply["text"] and "10" in reply["text"]


async def _start_job(bot, slack, openai_api, *, dataset="support") -> tuple[str, dict]:
    [confirm] = await command(bot, slack, f"start {dataset} epochs=3 suffix=acme", "start")
    assert_valid_blocks(confirm["blocks"])
    assert "Cost (est.)" in json.dumps(confirm["blocks"])
    token = [e for b in confirm["blocks"] if b["type"] == "actions" for e in b["elements"]][0]["value"]
    await bot.action(button("finetune_start_confirm", token, key="go", slack=slack))
    await bot.idle(30)
    created = [r for r in openai_api.requests if r.path.endswith("/fine_tuning/jobs") and r.method == "POST"]
    return token, created[-1].json if created else {}


async def test_start_confirm_card_progress_summary_and_loss_chart(http_bot, slack, openai_api):
    bot = await http_bot(ADMIN_USER_IDS=ADMIN, FINETUNE_POLL_INTERVAL="0.1")
    await stored_dataset(bot)
    token, body = await _start_job(bot, slack, openai_api)
    assert body["method"] == {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 3}}}
    assert "hyperparameters" not in body and body["suffix"] == "acme"
    assert len(openai_api.files) == 2  # training and validation files
    [card] = [m for m in slack.messages(channel="C1") if m["text"].startswith("Fine-tuning job")]
    await wait_until(lambda: any("finished" in m["text"] for m in slack.messages(thread_ts=card["ts"])), 15)
    card_updates = [c for c in slack.calls_to("chat.update") if c.params["ts"] == card["ts"]]
    statuses = [json.dumps(c.params["blocks"]) for c in card_updates]
    assert any("running" in s for s in statuses) and "succeeded" in statuses[-1]
    assert "ft:" in statuses[-1]  # the model id is on the card
    summary = [m for m in slack.messages(thread_ts=card["ts"]) if "finished" in m["text"]][0]
    assert "Trained tokens" in summary["text"] and "Final train loss" in summary["text"]
    await wait_until(lambda: any(u.filename == "loss-curve.png" for u in slack.uploads))
    [png] = [u for u in slack.uploads if u.filename == "loss-curve.png"]
    assert png.content.startswith(b"\x89PNG") and png.thread_ts == card["ts"]
    # a double click can't start a second job
    await bot.action(button("finetune_start_confirm", token, key="again", slack=slack))
    await bot.idle()
    assert "expired or was already used" in (await slack.wait_response("again"))[0]["text"]


async def test_openai_error_while_uploading_is_shown_on_the_card(http_bot, slack, openai_api):
    bot = await http_bot(ADMIN_USER_IDS=ADMIN)
    await stored_dataset(bot)
    openai_api.fail_next("/v1/files", 500, "upload exploded", times=10)
    await _start_job(bot, slack, openai_api)
    [card] = [m for m in slack.messages(channel="C1") if "didn't start" in m["text"]]
    assert "The dataset `support` is kept" in card["text"]
    assert await ft.load_dataset(bot.deps.core.store, "T1", "support") is not None


async def test_failed_job_shows_its_error(http_bot, slack, openai_api):
    bot = await http_bot(ADMIN_USER_IDS=ADMIN, FINETUNE_POLL_INTERVAL="0.1")
    openai_api.fail_job_with = {"code": "invalid_training_file", "message": "Line 3 has no assistant message"}
    await stored_dataset(bot)
    await _start_job(bot, slack, openai_api)
    [card] = [m for m in slack.messages(channel="C1") if m["text"].startswith("Fine-tuning job")]
    await wait_until(lambda: any("failed" in m["text"] for m in slack.messages(thread_ts=card["ts"])), 15)
    final = [c for c in slack.calls_to("chat.update") if c.params["ts"] == card["ts"]][-1]
    assert "Line 3 has no assistant message" in json.dumps(final.params["blocks"])


async def test_two_processes_only_one_updates_the_card(env, slack, openai_api):
    one = await HttpBot(
        {**env, "ADMIN_USER_IDS": ADMIN, "FINETUNE_POLL_INTERVAL": "0.1", "SLACK_BOT_TOKEN": "xoxb-one"}
    ).start()
    two = await HttpBot(
        {**env, "ADMIN_USER_IDS": ADMIN, "FINETUNE_POLL_INTERVAL": "0.1", "SLACK_BOT_TOKEN": "xoxb-two"}
    ).start()
    try:
        await stored_dataset(one)
        await _start_job(one, slack, openai_api)
        [card] = [m for m in slack.messages(channel="C1") if m["text"].startswith("Fine-tuning job")]
        await wait_until(
            lambda: any("finished" in m["text"] for m in slack.messages(thread_ts=card["ts"])), 15
        )
        await asyncio.sleep(0.5)
        # after the first card (posted by the process that got the click), one watcher keeps it
        updates = [c for c in slack.calls_to("chat.update") if c.params["ts"] == card["ts"]][1:]
        assert len(updates) >= 3
        assert len({c.headers.get("Authorization") for c in updates}) == 1
        summaries = [m for m in slack.messages(thread_ts=card["ts"]) if "finished" in m["text"]]
        assert len(summaries) == 1
    finally:
        await one.close()
        await two.close()


async def test_watching_resumes_after_a_restart(env, slack, openai_api):
    env = {**env, "ADMIN_USER_IDS": ADMIN, "FINETUNE_POLL_INTERVAL": "3600"}  # the first process never polls
    first = await HttpBot(env).start()
    await stored_dataset(first)
    await _start_job(first, slack, openai_api)
    await first.close()
    [card] = [m for m in slack.messages(channel="C1") if m["text"].startswith("Fine-tuning job")]
    assert not [m for m in slack.messages(thread_ts=card["ts"])]
    second = await HttpBot({**env, "FINETUNE_POLL_INTERVAL": "0.1"}).start()
    try:
        # the first process's lease must run out before the new one takes over
        await wait_until(
            lambda: any("finished" in m["text"] for m in slack.messages(thread_ts=card["ts"])), 20
        )
    finally:
        await second.close()


def _sign_webhook(secret: str, body: str, msg_id: str = "msg_1") -> dict:
    ts = str(int(time.time()))
    key = base64.b64decode(secret.removeprefix("whsec_"))
    sig = base64.b64encode(hmac.new(key, f"{msg_id}.{ts}.{body}".encode(), hashlib.sha256).digest()).decode()
    return {"webhook-id": msg_id, "webhook-timestamp": ts, "webhook-signature": f"v1,{sig}"}


async def test_openai_webhook_is_verified_and_refreshes_the_job(http_bot, slack, openai_api):
    secret = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
    bot = await http_bot(ADMIN_USER_IDS=ADMIN, FINETUNE_POLL_INTERVAL="3600", OPENAI_WEBHOOK_SECRET=secret)
    await stored_dataset(bot)
    await _start_job(bot, slack, openai_api)
    [record] = await ft.list_job_records(bot.deps.core.store, "T1")
    await bot.deps.core.store.redis.delete(f"{bot.deps.core.store.prefix}:ft:lease:{record.job_id}")
    payload = json.dumps(
        {
            "id": "evt_1",
            "object": "event",
            "created_at": int(time.time()),
            "type": "fine_tuning.job.succeeded",
            "data": {"id": record.job_id},
        }
    )
    forged = await bot.post(
        "/openai/webhooks",
        payload,
        "application/json",
        headers=_sign_webhook("whsec_" + base64.b64encode(b"x" * 32).decode(), payload),
        sign=False,
    )
    assert forged.status == 400
    before = len(slack.calls_to("chat.update"))
    good = await bot.post(
        "/openai/webhooks", payload, "application/json", headers=_sign_webhook(secret, payload), sign=False
    )
    assert good.status == 200
    await bot.idle()
    assert len(slack.calls_to("chat.update")) > before


async def test_status_events_list_cancel_and_unknown_job(http_bot, slack, openai_api):
    bot = await http_bot(ADMIN_USER_IDS=ADMIN, FINETUNE_POLL_INTERVAL="3600")
    await stored_dataset(bot)
    await _start_job(bot, slack, openai_api)
    [record] = await ft.list_job_records(bot.deps.core.store, "T1")
    [status] = await command(bot, slack, f"status {record.job_id}", "st")
    assert_valid_blocks(status["blocks"])
    [listing] = await command(bot, slack, "list", "ls")
    assert record.job_id in json.dumps(listing["blocks"])
    [events] = await command(bot, slack, f"events {record.job_id}", "ev")
    assert "Events of" in json.dumps(events["blocks"])
    [unknown] = await command(bot, slack, "status ftjob-nope", "nope")
    assert "`ftjob-nope` isn't a job this workspace started" in unknown["text"]
    [confirm] = await command(bot, slack, f"cancel {record.job_id}", "c")
    token = [e for b in confirm["blocks"] if b["type"] == "actions" for e in b["elements"]][0]["value"]
    await bot.action(button("finetune_cancel_confirm", token, key="cc", slack=slack))
    await bot.idle()
    assert "cancelled" in (await slack.wait_response("cc"))[0]["text"]


async def test_eval_and_use_put_the_tuned_model_to_work(http_bot, slack, openai_api):
    bot = await http_bot(ADMIN_USER_IDS=ADMIN, FINETUNE_POLL_INTERVAL="0.1")
    await stored_dataset(bot)
    await _start_job(bot, slack, openai_api)
    [card] = [m for m in slack.messages(channel="C1") if m["text"].startswith("Fine-tuning job")]
    await wait_until(lambda: any("finished" in m["text"] for m in slack.messages(thread_ts=card["ts"])), 15)
    [record] = await ft.list_job_records(bot.deps.core.store, "T1")
    tuned = record.fine_tuned_model
    assert tuned.startswith("ft:")
    await command(bot, slack, f"eval {record.job_id} n=2 judge=off", "e")
    models = {r["model"] for r in openai_api.chat_requests()}
    assert {tuned, record.model} <= models
    [file] = [u for u in slack.uploads if u.filename == "evaluation.txt"]
    [summary] = [m for m in slack.messages(channel="C1") if "Evaluation:" in m["text"]]
    assert_valid_blocks(summary["blocks"])
    assert "*Tuned*" in json.dumps(summary["blocks"]) and "*Base*" in json.dumps(summary["blocks"])
    assert b"tuned" in file.content.lower()
    assert any("Evaluation:" in m["text"] for m in slack.messages(channel="C1"))
    spent = (await usage.report(bot.deps.core.store, "T1")).by["persona"]["(fine-tune eval)"]
    assert spent.turns == 2 and spent.tokens > 0, "the evaluation's answers are counted in /usage"

    [used] = await command(bot, slack, f"use {tuned} <#C9|support>", "u")
    assert "now uses" in used["text"] and "o200k_base" in used["text"]
    first = mention("hello tuned", channel="C9")
    await bot.event(first)
    await bot.idle()
    assert openai_api.chat_requests()[-1]["model"] == tuned
    await bot.event(message("and a follow-up", channel="C9", thread_ts=first["ts"]))
    await bot.idle()
    assert openai_api.chat_requests()[-1]["model"] == tuned  # every turn, not just the first
    [bad] = await command(bot, slack, "use ft:gpt-4o-mini:nobody::zzz", "bad")
    assert "isn't a model this workspace trained" in bad["text"]


async def test_validate_screens_with_moderation_and_saves_a_valid_file(http_bot, slack, openai_api):
    bot = await http_bot(ADMIN_USER_IDS=ADMIN)
    lines = [json.dumps(example(i)) for i in range(12)]
    flagged = example(99)
    flagged["messages"][1]["content"] = "FLAGME how do I hurt someone"
    slack.add_file("flagged.jsonl", ("\n".join([*lines, json.dumps(flagged)]) + "\n").encode(), "C1")
    [reply] = await command(bot, slack, "validate", "v1")
    assert "has 1 error" in reply["text"]
    posted = [m for m in slack.messages(channel="C1") if "flagged.jsonl" in m["text"]][0]
    assert "line 13" in json.dumps(posted["blocks"]) and "flag" in json.dumps(posted["blocks"]).lower()
    assert [r for r in openai_api.requests if r.path.endswith("/moderations")]

    slack.add_file("good.jsonl", jsonl(12), "C1")
    [ok] = await command(bot, slack, "validate", "v2")
    assert "saved as dataset `good`" in ok["text"]
    assert await ft.load_dataset(bot.deps.core.store, "T1", "good") is not None
    assert openai_api.files == {}  # validation never uploads


async def test_question_answer_csv_becomes_a_dataset_with_the_persona(http_bot, slack, openai_api):
    bot = await http_bot(ADMIN_USER_IDS=ADMIN)
    rows = "question,answer,context\n" + "".join(
        f"How to reset {i}?,Open settings {i}.,Account page\n" for i in range(11)
    )
    slack.add_file("faq.csv", rows.encode(), "C1")
    [reply] = await command(bot, slack, "dataset import teacher name=faq", "i")
    assert "Saved dataset `faq`" in reply["text"]
    _, train, valid = await ft.load_dataset(bot.deps.core.store, "T1", "faq")
    first = json.loads((train + valid).splitlines()[0])
    assert "patient teacher" in first["messages"][0]["content"]
    assert first["messages"][1]["content"].startswith("Context:")
    broken = "question,answer\nonly a question,\n"
    slack.add_file("bad.csv", broken.encode(), "C1")
    [bad] = await command(bot, slack, "dataset import teacher name=bad", "b")
    assert "nothing was stored" in bad["text"] and "row" in bad["text"].lower()


async def test_large_dataset_file_is_read_completely(http_bot, slack, openai_api):
    bot = await http_bot(ADMIN_USER_IDS=ADMIN, FINETUNE_SCREENING="false")
    big = jsonl(3000)  # ~700 KB: arrives in many chunks
    assert len(big) > 500_000
    slack.add_file("big.jsonl", big, "C1")
    [reply] = await command(bot, slack, "validate", "big")
    assert "saved as dataset `big`" in reply["text"]
    ds, train, valid = await ft.load_dataset(bot.deps.core.store, "T1", "big")
    assert len((train + valid).splitlines()) == 3000


async def test_admins_name_other_admins_and_it_is_audited(http_bot, slack, openai_api):
    bot = await http_bot(ADMIN_USER_IDS=ADMIN)
    slack.users["U5"] = {"id": "U5", "is_admin": False}
    [refused] = await command(bot, slack, "list", "before", user="U5")
    assert "for admins only" in refused["text"]
    [done] = await command(bot, slack, "admins add <@U5|dana>", "add")
    assert "<@U5> is an admin here" in done["text"]
    [allowed] = await command(bot, slack, "list", "after", user="U5")
    assert "for admins only" not in allowed["text"]
    [listed] = await command(bot, slack, "admins", "who", user="U5")
    assert "<@U5>" in listed["text"]
    [self_removal] = await command(bot, slack, "admins remove <@U5|dana>", "self", user="U5")
    assert "can't remove yourself" in self_removal["text"]
    [removed] = await command(bot, slack, "admins remove <@U5|dana>", "rm")
    assert "no longer named an admin" in removed["text"]
    [again] = await command(bot, slack, "list", "again", user="U5")
    assert "for admins only" in again["text"]
    entries = await audit.recent(bot.deps.core.store, "T1", 50)
    assert any(e["action"] == "admins add" and e["detail"] == "U5" and e["user"] == ADMIN for e in entries)
    assert any(e["action"] == "admins remove" and e["detail"] == "U5" for e in entries)
