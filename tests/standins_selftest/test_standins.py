"""Self-tests for the local stand-ins, driven through the real slack_sdk and openai clients.

If these fail, scenario tests built on the stand-ins cannot be trusted, so they cover the
protocol details the SDKs depend on (encodings, SSE framing, error shapes, Socket Mode).
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import math
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from tests.standins.openai_api import OpenAIStandIn, Reply
from tests.standins.slack_api import SlackStandIn

# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    stand_in = SlackStandIn()
    await stand_in.start()
    yield stand_in
    await stand_in.close()


@pytest.fixture
async def web(slack: SlackStandIn) -> AsyncIterator[AsyncWebClient]:
    session = aiohttp.ClientSession()
    yield AsyncWebClient(base_url=slack.url, token="xoxb-test", session=session)
    await session.close()


@pytest.fixture
async def oai() -> AsyncIterator[OpenAIStandIn]:
    stand_in = OpenAIStandIn()
    await stand_in.start()
    yield stand_in
    await stand_in.close()


@pytest.fixture
async def client(oai: OpenAIStandIn) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=oai.url, api_key="t", max_retries=0) as c:
        yield c


# -- Slack Web API -------------------------------------------------------------------------


async def test_auth_post_update_and_recording(slack: SlackStandIn, web: AsyncWebClient) -> None:
    auth = await web.auth_test()
    assert (auth["user_id"], auth["bot_id"], auth["team_id"]) == ("UBOT", "BBOT", "T1")

    first = await web.chat_postMessage(channel="C1", thread_ts="1.0", text="thinking…")
    second = await web.chat_postMessage(channel="C1", text="other")
    assert float(second["ts"]) > float(first["ts"])
    assert first["message"]["user"] == "UBOT" and first["message"]["bot_id"] == "BBOT"

    await web.chat_update(
        channel="C1", ts=first["ts"], text="fallback", blocks=[{"type": "markdown", "text": "**done**"}]
    )
    assert slack.streamed_text(first["ts"]) == "**done**"
    assert [m["text"] for m in slack.messages(channel="C1", thread_ts="1.0")] == ["**done**"]

    call = slack.calls_to("chat.postMessage")[0]
    assert call.params["thread_ts"] == "1.0" and call.headers["Authorization"] == "Bearer xoxb-test"
    await web.conversations_replies(channel="C1", ts="1.0")
    assert len(slack.calls_to("conversations.replies")) == 1

    with pytest.raises(SlackApiError) as err:
        await web.chat_update(channel="C1", ts="999.0", text="x")
    assert err.value.response["error"] == "message_not_found"

    anonymous = AsyncWebClient(base_url=slack.url)
    with pytest.raises(SlackApiError) as err:
        await anonymous.auth_test()
    assert err.value.response["error"] == "not_authed"


async def test_form_encoded_json_params_are_decoded(slack: SlackStandIn, web: AsyncWebClient) -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "hi *there*"}}]
    await web.api_call("chat.postMessage", data={"channel": "C1", "text": "hi", "blocks": json.dumps(blocks)})
    (call,) = slack.calls_to("chat.postMessage")
    assert call.params["blocks"] == blocks
    assert slack.messages()[0]["text"] == "hi *there*"


async def test_users_and_conversations(slack: SlackStandIn, web: AsyncWebClient) -> None:
    slack.users["UADMIN"] = {"id": "UADMIN", "name": "boss", "is_admin": True}
    assert (await web.users_info(user="UADMIN"))["user"]["is_admin"] is True
    assert (await web.users_info(user="UX"))["user"] == {
        "id": "UX",
        "name": "ux",
        "is_admin": False,
        "is_owner": False,
        "is_bot": False,
    }
    assert (await web.conversations_info(channel="D9"))["channel"]["is_im"] is True


async def test_chat_stream_reassembles_text(slack: SlackStandIn, web: AsyncWebClient) -> None:
    stream = await web.chat_stream(
        channel="C1", thread_ts="1.0", recipient_team_id="T1", recipient_user_id="U1", buffer_size=10
    )
    pieces = ["Hello ", "streaming ", "world, ", "this is ", "a test."]
    for piece in pieces:
        await stream.append(markdown_text=piece)
    feedback = [{"type": "context_actions", "elements": []}]
    await stream.stop(markdown_text=" Bye.", blocks=feedback)

    assert slack.calls_to("chat.startStream") and slack.calls_to("chat.appendStream")
    assert slack.streamed_text(stream.ts) == "".join(pieces) + " Bye."
    (msg,) = slack.messages(thread_ts="1.0")
    assert msg["kind"] == "stream" and msg["blocks"] == feedback and msg["stopped"] is True
    with pytest.raises(SlackApiError) as err:
        await web.chat_appendStream(channel="C1", ts=stream.ts, markdown_text="late")
    assert err.value.response["error"] == "message_not_in_streaming_state"

    # legacy markdown_text form is understood as well
    started = await web.chat_startStream(channel="C1", thread_ts="2.0", markdown_text="a")
    await web.chat_appendStream(channel="C1", ts=started["ts"], markdown_text="b")
    await web.chat_stopStream(channel="C1", ts=started["ts"], markdown_text="c")
    assert slack.streamed_text(started["ts"]) == "abc"


async def test_files_upload_v2_and_download(slack: SlackStandIn, web: AsyncWebClient) -> None:
    payload = b"col\n1\n2\n"
    resp = await web.files_upload_v2(
        channel="C1",
        thread_ts="1.0",
        content=payload,
        filename="report.csv",
        title="Report",
        initial_comment="here",
    )
    (upload,) = slack.uploads
    assert (upload.filename, upload.title, upload.content) == ("report.csv", "Report", payload)
    assert (upload.channel_id, upload.thread_ts, upload.initial_comment) == ("C1", "1.0", "here")

    info = await web.files_info(file=resp["file"]["id"])
    assert info["file"]["name"] == "report.csv" and info["file"]["filetype"] == "csv"
    async with aiohttp.ClientSession() as http:
        url = info["file"]["url_private_download"]
        async with http.get(url, headers={"Authorization": "Bearer xoxb-test"}) as r:
            assert r.status == 200 and await r.read() == payload
        async with http.get(url) as r:
            assert r.status == 403


async def test_add_file_and_files_list(slack: SlackStandIn, web: AsyncWebClient) -> None:
    old = slack.add_file("notes.txt", b"old", channel="C1")
    new = slack.add_file("pic.png", b"\x89PNG", channel="C1")
    slack.add_file("elsewhere.txt", b"x", channel="C2")
    listed = await web.files_list(channel="C1", count=10)
    assert [f["id"] for f in listed["files"]] == [new["id"], old["id"]]
    images = await web.files_list(channel="C1", types="images")
    assert [f["name"] for f in images["files"]] == ["pic.png"]


async def test_fail_with_retry_after_is_retried(slack: SlackStandIn, web: AsyncWebClient) -> None:
    slack.fail("chat.postMessage", retry_after=0)
    with pytest.raises(SlackApiError) as err:
        await web.chat_postMessage(channel="C1", text="x")
    assert err.value.response.status_code == 429 and err.value.response.headers["Retry-After"] == "0"

    web.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=1))
    slack.fail("chat.postMessage", retry_after=0)
    resp = await web.chat_postMessage(channel="C1", text="y")
    assert resp["ok"]
    assert [c.failed for c in slack.calls_to("chat.postMessage")] == [True, True, False]

    slack.fail("reactions.add", error="already_reacted", times=2)
    for _ in range(2):
        with pytest.raises(SlackApiError):
            await web.reactions_add(channel="C1", timestamp="1.0", name="eyes")
    assert (await web.reactions_add(channel="C1", timestamp="1.0", name="eyes"))["ok"]


async def test_wait_for_times_out_with_listing(slack: SlackStandIn, web: AsyncWebClient) -> None:
    await web.chat_postMessage(channel="C1", text="x")
    with pytest.raises(AssertionError, match=r"chat\.postMessage"):
        await slack.wait_for("chat.update", timeout=0.05)
    task = asyncio.create_task(
        slack.wait_for("chat.postMessage", count=2, where=lambda c: c.params["channel"] == "C1")
    )
    await web.chat_postMessage(channel="C1", text="y")
    assert len(await task) == 2


async def test_response_url(slack: SlackStandIn) -> None:
    url = slack.response_url("k1")
    hook = AsyncWebhookClient(url)
    resp = await hook.send(text="ephemeral answer", response_type="ephemeral")
    assert resp.status_code == 200
    assert (await slack.wait_response("k1"))[0]["text"] == "ephemeral answer"
    slack.expire_response_url("k1")
    resp = await hook.send(text="too late")
    assert (resp.status_code, resp.body) == (404, "expired_url")


async def test_socket_mode_envelope_ack_and_reconnect(slack: SlackStandIn) -> None:
    received: list[SocketModeRequest] = []

    async def listener(client: Any, req: SocketModeRequest) -> None:
        received.append(req)
        await client.send_socket_mode_response(
            SocketModeResponse(envelope_id=req.envelope_id, payload={"ok": 1})
        )

    web_client = AsyncWebClient(base_url=slack.url)
    socket_client = SocketModeClient(app_token="xapp-test", web_client=web_client)
    socket_client.socket_mode_request_listeners.append(listener)
    try:
        await socket_client.connect()
        await asyncio.wait_for(slack.socket_connected.wait(), 5)
        assert slack.calls_to("apps.connections.open")[0].headers["Authorization"] == "Bearer xapp-test"

        event = {"type": "event_callback", "event": {"type": "app_mention", "text": "hi"}}
        envelope_id = await slack.send_envelope("events_api", event, retry_attempt=1, retry_reason="timeout")
        ack = await slack.wait_ack(envelope_id)
        assert ack == {"envelope_id": envelope_id, "payload": {"ok": 1}}
        assert received[0].payload == event and received[0].retry_attempt == 1

        await slack.disconnect_socket()
        await slack.wait_for("apps.connections.open", count=2)
        assert await slack._wait_until(
            lambda: slack.socket_connections == 2 and slack.socket_connected.is_set(), 5
        )
        envelope_id = await slack.send_envelope(
            "slash_commands", {"command": "/tw"}, accepts_response_payload=True
        )
        await slack.wait_ack(envelope_id)
        assert received[-1].accepts_response_payload is True
    finally:
        await socket_client.close()


# -- OpenAI --------------------------------------------------------------------------------


async def test_streamed_chat_with_usage(oai: OpenAIStandIn, client: openai.AsyncOpenAI) -> None:
    oai.enqueue(Reply(text="Hello streaming world", chunk_size=5, usage=(11, 7)))
    stream = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [c async for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello streaming world"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.prompt_tokens == 11
    assert chunks[-1].usage.completion_tokens == 7
    assert oai.chat_requests()[0]["stream"] is True


async def test_default_echo_and_refusal(oai: OpenAIStandIn, client: openai.AsyncOpenAI) -> None:
    resp = await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "ping"}])
    assert resp.choices[0].message.content == "Echo: ping" and resp.usage.total_tokens > 0
    oai.enqueue(Reply(refusal="I can't help with that."))
    resp = await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "bad"}])
    assert resp.choices[0].message.refusal == "I can't help with that."
    assert resp.choices[0].message.content is None


async def test_rate_limit_error_exposes_retry_after(oai: OpenAIStandIn, client: openai.AsyncOpenAI) -> None:
    oai.enqueue(Reply(status=429, error_code="rate_limit_exceeded", error_message="slow down", retry_after=7))
    with pytest.raises(openai.RateLimitError) as err:
        await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert err.value.code == "rate_limit_exceeded" and "slow down" in str(err.value)
    assert err.value.response.headers["retry-after"] == "7"
    assert err.value.response.headers["retry-after-ms"] == "7000"

    oai.enqueue(Reply(status=400, error_code="context_length_exceeded"))
    with pytest.raises(openai.BadRequestError) as bad:
        await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert bad.value.code == "context_length_exceeded"


async def test_stream_cut_mid_way_raises(oai: OpenAIStandIn, client: openai.AsyncOpenAI) -> None:
    oai.enqueue(Reply(text="abcdefghijklmnopqrstuvwxyz", chunk_size=4, cut_after=3))
    stream = await client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "x"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    got = []
    with pytest.raises(openai.APIConnectionError):
        async for chunk in stream:
            got.append(chunk.choices[0].delta.content or "")
    assert "".join(got) == "abcdefgh"


async def test_delay_provokes_timeout_and_server_survives(
    oai: OpenAIStandIn, client: openai.AsyncOpenAI
) -> None:
    oai.enqueue(Reply(text="late", delay=0.5))
    with pytest.raises(openai.APITimeoutError):
        await client.with_options(timeout=0.1).chat.completions.create(
            model="m", messages=[{"role": "user", "content": "x"}]
        )
    resp = await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "again"}])
    assert resp.choices[0].message.content == "Echo: again"


async def test_json_schema_unsupported(oai: OpenAIStandIn, client: openai.AsyncOpenAI) -> None:
    oai.json_schema_supported = False
    schema = {"name": "x", "schema": {"type": "object", "properties": {}}}
    with pytest.raises(openai.BadRequestError) as err:
        await client.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "x"}],
            response_format={"type": "json_schema", "json_schema": schema},
        )
    assert err.value.param == "response_format"
    oai.enqueue(Reply(text='{"a": 1}'))
    resp = await client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "x"}], response_format={"type": "json_object"}
    )
    assert json.loads(resp.choices[0].message.content) == {"a": 1}
    assert oai.pending_replies == 0


async def test_moderation_and_embeddings(oai: OpenAIStandIn, client: openai.AsyncOpenAI) -> None:
    mod = await client.moderations.create(input=["hello there", "please FLAGME now"])
    assert [r.flagged for r in mod.results] == [False, True]

    emb = await client.embeddings.create(
        model="text-embedding-3-small",
        input=[
            "How do I reset my password?",
            "how do i reset my password",
            "Quarterly revenue forecast spreadsheet",
        ],
    )
    a, b, c = (d.embedding for d in emb.data)
    assert len(a) == 256 and math.isclose(sum(x * x for x in a), 1.0, rel_tol=1e-6)

    def cos(x: list[float], y: list[float]) -> float:
        return sum(p * q for p, q in zip(x, y, strict=True))

    assert cos(a, b) > 0.99 and cos(a, c) < 0.3
    b64 = await client.embeddings.create(
        model="e", input="how do I reset my password", encoding_format="base64"
    )
    assert isinstance(b64.data[0].embedding, (str, list))


async def test_files_and_fine_tuning_progression(oai: OpenAIStandIn, client: openai.AsyncOpenAI) -> None:
    training = (
        b'{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}\n' * 10
    )
    file = await client.files.create(file=("train.jsonl", training), purpose="fine-tune")
    assert file.status == "processed" and oai.files[file.id][1] == training
    assert (await client.files.content(file.id)).read() == training

    job = await client.fine_tuning.jobs.create(
        model="gpt-4o-mini-2024-07-18", training_file=file.id, suffix="tw"
    )
    assert job.status == "validating_files" and job.user_provided_suffix == "tw"
    statuses = [(await client.fine_tuning.jobs.retrieve(job.id)).status for _ in range(5)]
    assert statuses == ["queued", "running", "running", "succeeded", "succeeded"]
    done = await client.fine_tuning.jobs.retrieve(job.id)
    assert done.fine_tuned_model.startswith("ft:gpt-4o-mini-2024-07-18:threadwise:tw:")
    assert done.trained_tokens and done.finished_at

    content = (await client.files.content(done.result_files[0])).text
    rows = list(csv.DictReader(io.StringIO(content)))
    assert list(rows[0]) == [
        "step",
        "train_loss",
        "train_accuracy",
        "valid_loss",
        "valid_mean_token_accuracy",
    ]
    assert len(rows) == 20 and float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])

    events = [e async for e in client.fine_tuning.jobs.list_events(job.id)]
    assert events[0].message == "The job has successfully completed"
    assert any(e.type == "metrics" and e.data["train_loss"] for e in events)
    checkpoints = await client.fine_tuning.jobs.checkpoints.list(job.id)
    assert checkpoints.data[0].metrics.step == 20
    listed = await client.fine_tuning.jobs.list()
    assert [j.id for j in listed.data] == [job.id]


async def test_fine_tuning_cancel_failure_and_fault_injection(
    oai: OpenAIStandIn, client: openai.AsyncOpenAI
) -> None:
    file = await client.files.create(file=("t.jsonl", b"{}\n"), purpose="fine-tune")
    job = await client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=file.id)
    assert (await client.fine_tuning.jobs.cancel(job.id)).status == "cancelled"
    assert (await client.fine_tuning.jobs.retrieve(job.id)).status == "cancelled"

    oai.fail_job_with = {"code": "invalid_training_file", "message": "bad line 3"}
    failing = await client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=file.id)
    oai.advance(failing.id, "succeeded")
    failed = await client.fine_tuning.jobs.retrieve(failing.id)
    assert failed.status == "failed" and failed.error.code == "invalid_training_file"

    oai.fail_next("/fine_tuning/jobs", 500, "boom")
    with pytest.raises(openai.InternalServerError):
        await client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=file.id)
    with pytest.raises(openai.BadRequestError):
        await client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file="file-missing")
    oai.fail_next("/v1/files", 503, "down", code="overloaded")
    with pytest.raises(openai.APIStatusError) as err:
        await client.files.list()
    assert err.value.status_code == 503 and err.value.code == "overloaded"
    with pytest.raises(openai.NotFoundError):
        await client.batches.retrieve("batch_1")
