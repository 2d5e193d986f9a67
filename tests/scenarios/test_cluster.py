"""The whole bot on a Redis Cluster: REDIS_CLUSTER=1 and REDIS_URL naming one node of it."""

from __future__ import annotations

import json

import pytest

from core import audit, history, keys
from core.finetune import store as ft
from core.store import Cluster, RoundTrips, connect
from tests.conftest import _delete_prefix
from tests.scenarios.harness import block_action, mention, message

pytestmark = pytest.mark.cluster

ADMIN = "UADMIN"


def _example(i: int) -> dict:
    return {
        "messages": [
            {"role": "user", "content": f"How do I rotate key {i}?"},
            {"role": "assistant", "content": f"Open Settings, then Keys, then Rotate ({i})."},
        ]
    }


def _jsonl(n: int) -> bytes:
    return "".join(json.dumps(_example(i)) + "\n" for i in range(n)).encode()


@pytest.fixture
async def on_cluster(redis_cluster_url, key_prefix):
    """The bot's Redis settings; afterwards its keys go, from every primary.

    Requested before `http_bot`, so it is torn down after the bot has stopped.
    """
    yield {"REDIS_URL": redis_cluster_url, "REDIS_CLUSTER": "1"}
    redis = connect(redis_cluster_url, cluster=True)
    await _delete_prefix(redis, key_prefix)
    await redis.aclose()


async def _finetune(bot, slack, text: str, key: str) -> list[dict]:
    await bot.command("/finetune", text, user=ADMIN, response_url=slack.response_url(key))
    await bot.idle(30)
    return await slack.wait_response(key)


async def test_mentions_threads_personas_and_datasets_work_on_a_cluster(
    on_cluster, http_bot, slack, openai_api
):
    # a long lease: the recovery scan (every lease/4) stays out of the counted round trips
    bot = await http_bot(
        ADMIN_USER_IDS=ADMIN, FINETUNE_SCREENING="false", TURN_LEASE_SECONDS="600", **on_cluster
    )
    store = bot.deps.core.store
    assert isinstance(store.redis, Cluster) and store.embedded is None

    # A mention, then a follow-up in its thread: the history comes back from the cluster.
    first = mention("What is our deploy day?")
    await bot.event(first)
    await bot.idle()
    [reply] = slack.messages(thread_ts=first["ts"])
    assert reply["text"].startswith("Echo: <@U1>: What is our deploy day?")
    before = RoundTrips.count
    await bot.event(message("and who approves it?", thread_ts=first["ts"], user="U2"))
    await bot.idle()
    # as on one server: inbox + index before the ack (one pipeline), queue, persona,
    # shown, close with its usage counters (one pipeline); and 3 Slack budgets. Each
    # pipeline reaches one more node when the index, or the workspace's slot, lives on
    # another node than the thread's (sent in parallel, but counted per node).
    conv = keys.conversation(store.prefix, keys.conversation_id("T1", "C1", first["ts"])).msgs
    node = store.redis.get_node_from_key
    elsewhere = [
        node(other).name != node(conv).name
        for other in (keys.open_turns(store.prefix), keys.workspace(store.prefix, "T1").personas)
    ]
    assert RoundTrips.count - before == 5 + 3 + sum(elsewhere)
    sent = openai_api.chat_requests()[-1]["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
    assert sent[1]["content"] == "<@U1>: What is our deploy day?"

    # Personas: the channel's (a workspace key), then the thread's own (a conversation key).
    await bot.command("/persona", "teacher", user="U7", response_url=slack.response_url("p"))
    await slack.wait_response("p")
    await bot.event(mention("persona socratic", thread_ts=first["ts"]))
    await bot.idle()
    assert "switched this thread to *socratic*" in slack.messages(thread_ts=first["ts"])[-1]["text"]
    await bot.event(message("why that day?", thread_ts=first["ts"]))
    await bot.idle()
    sent = openai_api.chat_requests()[-1]["messages"]
    assert "Socratic" in sent[0]["content"]
    assert [m["role"] for m in sent[1:]] == ["user", "assistant", "user", "assistant", "user"]
    other = mention("a new question", channel="C1")
    await bot.event(other)
    await bot.idle()
    assert "patient teacher" in openai_api.chat_requests()[-1]["messages"][0]["content"]

    # Reset forgets the thread's messages but keeps its persona.
    await bot.event(mention("reset", thread_ts=first["ts"]))
    await bot.idle()
    assert "forgotten" in slack.messages(thread_ts=first["ts"])[-1]["text"]
    assert await history.messages(store, history.conversation_id("T1", "C1", first["ts"])) == []

    # A fine-tuning dataset: saved from a validated file, then replaced after a confirmation.
    slack.add_file("support.jsonl", _jsonl(12), "C1")
    [saved] = await _finetune(bot, slack, "validate", "v1")
    assert "saved as dataset `support`" in saved["text"]
    ds, train, valid = await ft.load_dataset(store, "T1", "support")
    assert ds.examples + ds.validation_examples == 12 == len((train + valid).splitlines())
    slack.add_file("support.jsonl", _jsonl(15), "C1")
    replies = await _finetune(bot, slack, "validate", "v2")
    ask = next(r for r in replies if "already exists" in json.dumps(r.get("blocks")))
    [button] = [
        e
        for b in ask["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
        if e["action_id"] == "finetune_overwrite_confirm"
    ]
    await bot.action(block_action(button, user=ADMIN, response_url=slack.response_url("ok")))
    await bot.idle()
    assert "Replaced dataset `support`" in (await slack.wait_response("ok"))[0]["text"]
    ds, train, valid = await ft.load_dataset(store, "T1", "support")
    assert ds.examples + ds.validation_examples == 15 == len((train + valid).splitlines())
    actions = [e["action"] for e in await audit.recent(store, "T1")]
    assert actions[0] == "finetune dataset replace" and "/finetune validate" in actions

    # The keys really are spread: conversations and workspaces live on several nodes. (Three
    # keys alone share a node one time in nine; twenty threads' keys never do.)
    threads = [first["ts"], other["ts"], *(f"1700000000.{i:06d}" for i in range(20))]
    slots = {
        await store.redis.cluster_keyslot(key)
        for key in (
            *(keys.conversation(store.prefix, history.conversation_id("T1", "C1", t)).msgs for t in threads),
            keys.workspace(store.prefix, "T1").datasets,
        )
    }
    owners = {store.redis.nodes_manager.get_node_from_slot(slot).name for slot in slots}
    assert len(owners) >= 2


async def test_two_processes_on_a_cluster_answer_one_thread_in_order(on_cluster, http_bot, slack, openai_api):
    from tests.scenarios.test_many_processes import _answer_naming_the_question, _final_answers, _wait

    a, b = await http_bot(**on_cluster), await http_bot(**on_cluster)
    openai_api.default = _answer_naming_the_question
    first = mention("q0")
    await a.event(first)
    for i in range(1, 8):
        await (a if i % 2 else b).event(message(f"q{i}", thread_ts=first["ts"]))
    await _wait(lambda: len(_final_answers(slack, first["ts"])) == 8, what="8 answers")
    await a.idle()
    await b.idle()
    answers = [text.split("\n")[0] for text in _final_answers(slack, first["ts"])]
    assert answers == [f"answer to [q{i}]" for i in range(8)]
    last = openai_api.chat_requests()[-1]["messages"]
    assert len(last) == 1 + 2 * 7 + 1  # system, every earlier question and answer, q7
