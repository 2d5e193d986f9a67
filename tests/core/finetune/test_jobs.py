"""Fine-tuning jobs against the local OpenAI stand-in, through the real SDK."""

from __future__ import annotations

import base64
import json

import openai
import pytest

from core.finetune import jobs
from core.finetune.charts import parse_result_csv
from core.finetune.jobs import FineTuneError, JobView
from core.finetune.validate import validate_dataset
from tests.standins.openai_api import OpenAIStandIn

TRAIN = b'{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"hello"}]}\n'
VALID = b'{"messages":[{"role":"user","content":"yo"},{"role":"assistant","content":"hey"}]}\n'
MODEL = "gpt-4o-mini-2024-07-18"


@pytest.fixture
def api(openai_api: OpenAIStandIn) -> OpenAIStandIn:
    return openai_api


@pytest.fixture
def client(openai_client: openai.AsyncOpenAI) -> openai.AsyncOpenAI:
    return openai_client


def posts(api: OpenAIStandIn, path: str) -> list:
    return [r for r in api.requests if r.method == "POST" and r.path == path]


async def start(client, **overrides) -> JobView:
    kwargs = {"train_jsonl": TRAIN, "valid_jsonl": None, "model": MODEL, "epochs": None, "suffix": None}
    return await jobs.upload_and_create(client, **{**kwargs, **overrides})


async def run_to_end(client, job_id: str) -> list[JobView]:
    seen = []
    for _ in range(10):
        view = await jobs.retrieve(client, job_id)
        seen.append(view)
        if view.terminal:
            return seen
    raise AssertionError(f"job never finished: {[v.status for v in seen]}")


async def test_upload_and_create_sends_supervised_method(api, client):
    view = await start(
        client,
        valid_jsonl=VALID,
        epochs=3,
        suffix="support-bot",
        seed=7,
        metadata={"workspace": "T1"},
        filename="support.jsonl",
    )

    uploads = sorted(api.files.values(), key=lambda f: f[0]["filename"])
    assert [(m["filename"], m["purpose"], content) for m, content in uploads] == [
        ("support.jsonl", "fine-tune", TRAIN),
        ("support.validation.jsonl", "fine-tune", VALID),
    ]
    [create] = posts(api, "/v1/fine_tuning/jobs")
    body = create.json
    assert body["method"] == {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 3}}}
    assert "hyperparameters" not in body  # the deprecated top-level form
    assert (body["model"], body["suffix"], body["seed"], body["metadata"]) == (
        MODEL,
        "support-bot",
        7,
        {"workspace": "T1"},
    )
    train_id = next(m["id"] for m, _ in uploads if m["filename"] == "support.jsonl")
    assert body["training_file"] == train_id and body["validation_file"] != train_id

    assert view.id.startswith("ftjob-") and view.status == "validating_files" and not view.terminal
    assert (view.model, view.n_epochs, view.suffix, view.training_file) == (MODEL, 3, "support-bot", train_id)
    assert view.validation_file == body["validation_file"]
    assert view.duration_seconds is None


async def test_auto_epochs_and_no_optional_fields(api, client):
    view = await start(client)
    body = posts(api, "/v1/fine_tuning/jobs")[0].json
    assert body["method"]["supervised"]["hyperparameters"] == {"n_epochs": "auto"}
    assert not {"validation_file", "suffix", "seed", "metadata"} & set(body)
    assert view.n_epochs is None and view.validation_file is None
    assert len(api.files) == 1


async def test_bad_arguments_are_refused_before_any_call(api, client):
    with pytest.raises(ValueError, match="empty"):
        await start(client, train_jsonl=b"")
    with pytest.raises(ValueError, match="epochs"):
        await start(client, epochs=0)
    assert api.requests == []


async def test_job_progresses_to_success_with_progress_and_results(api, client):
    job = await start(client, epochs=2, suffix="s")
    seen = await run_to_end(client, job.id)

    assert [v.status for v in seen] == ["queued", "running", "running", "succeeded"]
    first_running = seen[1]
    assert (first_running.step, first_running.total_steps) == (5, 20)
    assert first_running.train_loss == round(2.4 * 0.88**5 + 0.08, 4)
    assert first_running.valid_loss == pytest.approx(first_running.train_loss + 0.05)
    assert seen[2].step == 10
    assert seen[0].step is None  # no metrics event yet while queued

    done = seen[-1]
    assert done.terminal and done.fine_tuned_model == f"ft:{MODEL}:threadwise:s:{job.id[6:14]}"
    assert done.trained_tokens == len(TRAIN) // 4 * 2
    assert done.duration_seconds is not None and done.duration_seconds >= 0
    assert done.error_code is None and len(done.result_files) == 1

    text = await jobs.result_csv(client, done)
    assert text.startswith("step,train_loss,train_accuracy,valid_loss")
    rows = parse_result_csv(text)
    assert len(rows) == 20 and rows[0]["step"] == 1


async def test_unknown_status_is_kept_not_fatal(api, client):
    api.job_script = ["validating_files", "paused", "running", "succeeded"]
    job = await start(client)
    view = await jobs.retrieve(client, job.id)
    assert view.status == "paused" and not view.terminal


async def test_failed_job_reports_its_error(api, client):
    api.fail_job_with = {"code": "invalid_training_file", "message": "Line 3 has no assistant message."}
    job = await start(client)
    done = (await run_to_end(client, job.id))[-1]
    assert done.status == "failed" and done.terminal
    assert (done.error_code, done.error_message) == (
        "invalid_training_file",
        "Line 3 has no assistant message.",
    )
    assert done.fine_tuned_model is None and done.result_files == []
    assert await jobs.result_csv(client, done) == ""


async def test_upload_failure_names_the_stage(api, client):
    api.fail_next("/files", 400, "File is not valid JSONL.", code="invalid_file")
    with pytest.raises(FineTuneError) as info:
        await start(client)
    error = info.value
    assert error.stage == "upload_training" and error.kind == "bad_request" and error.code == "invalid_file"
    assert str(error) == "Uploading the training file failed: File is not valid JSONL."
    assert isinstance(error.__cause__, openai.BadRequestError)
    assert api.jobs == {}


async def test_create_failure_is_not_retried_and_cleans_up_uploads(api, client):
    api.fail_next("/fine_tuning/jobs", 500, "boom")
    with pytest.raises(FineTuneError) as info:
        await start(client, valid_jsonl=VALID)
    assert info.value.stage == "create" and info.value.kind == "unavailable"
    assert "Creating the fine-tuning job failed: boom" == info.value.message
    assert len(posts(api, "/v1/fine_tuning/jobs")) == 1  # a retry could start a second billed job
    assert api.files == {}  # both uploads deleted again
    assert api.jobs == {}


async def test_reads_are_retried(api, client):
    job = await start(client)
    api.fail_next(f"/fine_tuning/jobs/{job.id}", 503, "overloaded")
    view = await jobs.retrieve(client, job.id)
    assert view.id == job.id
    gets = [r for r in api.requests if r.method == "GET" and r.path == f"/v1/fine_tuning/jobs/{job.id}"]
    assert len(gets) == 2


async def test_retrieve_unknown_job_and_events_failure(api, client):
    with pytest.raises(FineTuneError) as info:
        await jobs.retrieve(client, "ftjob-nope")
    assert info.value.stage == "retrieve" and "Could not find fine-tune job" in info.value.message

    job = await start(client)
    api.advance(job.id, "running")
    api.fail_next(f"/fine_tuning/jobs/{job.id}/events", 400, "nope")
    view = await jobs.retrieve(client, job.id)  # progress is optional; the status still arrives
    assert view.status in {"running", "queued"} and view.step is None


async def test_list_cancel_and_events(api, client):
    first = await start(client)
    second = await start(client, suffix="two")
    listed = await jobs.list_jobs(client, limit=10)
    assert [v.id for v in listed] == [second.id, first.id]
    assert listed[0].suffix == "two"

    cancelled = await jobs.cancel(client, first.id)
    assert cancelled.status == "cancelled" and cancelled.terminal and cancelled.finished_at
    with pytest.raises(FineTuneError) as info:
        await jobs.cancel(client, first.id)
    assert info.value.stage == "cancel" and info.value.code == "invalid_state"

    log = await jobs.events(client, first.id)
    assert log[-1]["message"] == f"Created fine-tuning job: {first.id}"  # newest first
    assert log[0]["message"] == "Fine-tuning job cancelled"
    assert set(log[0]) == {"created_at", "level", "message", "type", "data"}
    assert all(e["level"] == "info" and e["type"] == "message" for e in log)

    api.advance(second.id, "running")
    metrics = [e for e in await jobs.events(client, second.id) if e["type"] == "metrics"]
    assert metrics and metrics[0]["data"]["step"] == 5

    limited = await jobs.events(client, second.id, limit=2)
    assert len(limited) == 2 and limited[0]["type"] == "metrics"


async def test_result_csv_decodes_base64_files(api, client):
    csv_text = "step,train_loss\n1,0.5\n"
    meta = api.add_file("step_metrics.csv", base64.b64encode(csv_text.encode()), "fine-tune-results")
    view = JobView(id="ftjob-x", status="succeeded", model=MODEL, result_files=[meta["id"]])
    assert await jobs.result_csv(client, view) == csv_text

    api.fail_next(f"/files/{meta['id']}/content", 404, "No such File object")
    with pytest.raises(FineTuneError) as info:
        await jobs.result_csv(client, view)
    assert info.value.stage == "result"


def test_job_view_properties():
    view = JobView(id="j", status="running", model=MODEL, created_at=100)
    assert not view.terminal and view.duration_seconds is None
    view.status, view.finished_at = "succeeded", 160
    assert view.terminal and view.duration_seconds == 60
    assert jobs.TERMINAL == frozenset({"succeeded", "failed", "cancelled"})


def test_estimate_reads_the_validator_report():
    examples = [
        {
            "messages": [
                {"role": "user", "content": f"question {i}"},
                {"role": "assistant", "content": f"answer {i}"},
            ]
        }
        for i in range(12)
    ]
    text = "".join(json.dumps(e) + "\n" for e in examples)
    report = validate_dataset(text, model=MODEL)
    numbers = jobs.estimate(report)
    assert numbers["n_examples"] == 12 and numbers["epochs"] == 8 == numbers["recommended_epochs"]
    assert numbers["billed_tokens"] == report.billed_tokens > 0
    assert numbers["estimated_cost"] == pytest.approx(report.billed_tokens / 1e6 * 3.00)
    assert numbers["cost_text"].startswith("~$") and numbers["ok"] is True

    unknown = jobs.estimate(validate_dataset(text, model="my-local-model", epochs=2))
    assert unknown["epochs"] == 2 and unknown["estimated_cost"] is None
    assert unknown["cost_text"].startswith("unknown")
