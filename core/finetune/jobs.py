"""Running OpenAI fine-tuning jobs: upload, create, poll, cancel, and read their results.

Everything returns a plain `JobView` rather than the SDK's objects, so the bot and the
CLI render one shape and never depend on SDK fields that come and go. Failures become a
`FineTuneError` naming the stage, because "the upload failed" and "the job could not be
created" need different advice for the user.

Retries: reads (retrieve, list, events, file content) use the shared policy from
`core.llm`. Creating calls (file uploads, job creation, cancel) are tried once: a request
that timed out may still have succeeded on the server, and retrying a job creation could
start (and bill) a second training run.
"""

from __future__ import annotations

import base64
import binascii
import logging
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import openai
from openai import AsyncOpenAI

from core import llm
from core.finetune.report import Report

log = logging.getLogger(__name__)


class JobStatus(StrEnum):
    """The fine-tuning job statuses we know of, for comparisons in our code.

    OpenAI's documented ones plus "paused", which it returns without documenting it.
    `JobView.status` stays the string the API sent, not a member: OpenAI may add more,
    and an unknown status must render, not crash. Members are strings, so
    `view.status == JobStatus.SUCCEEDED` and `view.status in TERMINAL` work on the raw
    string.
    """

    VALIDATING_FILES = "validating_files"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    PAUSED = "paused"


TERMINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})
READ_ATTEMPTS = 4
# Newest events to scan for the latest "metrics" event; during a run nearly all events are metrics.
_PROGRESS_EVENTS = 20

_STAGE_LABELS = {
    "upload_training": "Uploading the training file",
    "upload_validation": "Uploading the validation file",
    "create": "Creating the fine-tuning job",
    "retrieve": "Checking the fine-tuning job",
    "list": "Listing fine-tuning jobs",
    "cancel": "Cancelling the fine-tuning job",
    "events": "Reading the job's events",
    "result": "Downloading the job's results",
}


class FineTuneError(Exception):
    """A fine-tuning call failed; `stage` says which step, the message says why in plain words.

    `kind` is `core.llm.error_kind` of the underlying OpenAI error ("auth", "quota",
    "bad_request", ...) so callers can pick advice without parsing text; the OpenAI
    exception itself stays available as `__cause__`.
    """

    def __init__(self, stage: str, message: str, *, kind: str = "other", code: str | None = None) -> None:
        super().__init__(message)
        self.stage = stage
        self.message = message
        self.kind = kind
        self.code = code


def _api_message(exc: BaseException) -> str:
    """OpenAI's own sentence when there is one, instead of the SDK's "Error code: 400 - {...}"."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str) and inner["message"]:
            return inner["message"]
    if isinstance(exc, openai.APITimeoutError):
        return "the request timed out"
    if isinstance(exc, openai.APIConnectionError):
        return "could not reach the OpenAI API"
    return str(exc) or type(exc).__name__


def _wrap(stage: str, exc: BaseException) -> FineTuneError:
    label = _STAGE_LABELS.get(stage, stage)
    code = getattr(exc, "code", None)
    error = FineTuneError(
        stage,
        f"{label} failed: {_api_message(exc)}",
        kind=llm.error_kind(exc),
        code=str(code) if code else None,
    )
    error.__cause__ = exc
    return error


@dataclass
class JobView:
    """What we show about a fine-tuning job, independent of the SDK's models.

    `status` is kept as the API sent it: OpenAI returns values outside its documented
    enum (a paused job says "paused"), and an unknown status must render, not crash.
    The progress fields (step ... valid_loss) come from the newest "metrics" event and
    are only filled by `retrieve`.
    """

    id: str
    status: str
    model: str
    fine_tuned_model: str | None = None
    trained_tokens: int | None = None
    created_at: int | None = None
    finished_at: int | None = None
    error_code: str | None = None
    error_message: str | None = None
    training_file: str | None = None
    validation_file: str | None = None
    n_epochs: int | None = None
    suffix: str | None = None
    result_files: list[str] = field(default_factory=list)
    step: int | None = None
    total_steps: int | None = None
    train_loss: float | None = None
    valid_loss: float | None = None

    @property
    def terminal(self) -> bool:
        """True once the job will not change any more, so polling can stop."""
        return self.status in TERMINAL

    @property
    def duration_seconds(self) -> int | None:
        """Wall time from creation to finish; None while the job is still going."""
        if self.created_at is None or self.finished_at is None:
            return None
        return max(0, self.finished_at - self.created_at)


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _float_or_none(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _epochs(job: Any) -> int | None:
    """n_epochs from `method.supervised` (current API) or the deprecated top-level field; "auto" -> None."""
    method = getattr(job, "method", None)
    supervised = getattr(method, "supervised", None) if method is not None else None
    hyper = getattr(supervised, "hyperparameters", None) if supervised is not None else None
    epochs = _int_or_none(getattr(hyper, "n_epochs", None)) if hyper is not None else None
    if epochs is None:
        top = getattr(job, "hyperparameters", None)
        epochs = _int_or_none(getattr(top, "n_epochs", None)) if top is not None else None
    return epochs


def _view(job: Any) -> JobView:
    """A JobView from an SDK FineTuningJob, reading every field defensively."""
    error = getattr(job, "error", None)
    return JobView(
        id=str(job.id),
        status=str(getattr(job, "status", "") or "unknown"),
        model=str(getattr(job, "model", "") or ""),
        fine_tuned_model=getattr(job, "fine_tuned_model", None),
        trained_tokens=_int_or_none(getattr(job, "trained_tokens", None)),
        created_at=_int_or_none(getattr(job, "created_at", None)),
        finished_at=_int_or_none(getattr(job, "finished_at", None)),
        error_code=(getattr(error, "code", None) or None) if error is not None else None,
        error_message=(getattr(error, "message", None) or None) if error is not None else None,
        training_file=getattr(job, "training_file", None),
        validation_file=getattr(job, "validation_file", None),
        n_epochs=_epochs(job),
        suffix=getattr(job, "user_provided_suffix", None),
        result_files=list(getattr(job, "result_files", None) or []),
    )


def _apply_metrics(view: JobView, data: Any) -> None:
    if not isinstance(data, dict):
        return
    view.step = _int_or_none(data.get("step"))
    view.total_steps = _int_or_none(data.get("total_steps"))
    view.train_loss = _float_or_none(data.get("train_loss"))
    view.valid_loss = _float_or_none(data.get("valid_loss"))


async def _upload(client: AsyncOpenAI, stage: str, filename: str, content: bytes) -> str:
    try:
        uploaded = await client.files.create(file=(filename, content), purpose="fine-tune")
    except openai.OpenAIError as exc:
        raise _wrap(stage, exc) from exc
    return uploaded.id


async def _forget_files(client: AsyncOpenAI, file_ids: list[str]) -> None:
    """Best effort: don't leave uploads behind when the job they were for was never created."""
    for file_id in file_ids:
        try:
            await client.files.delete(file_id)
        except openai.OpenAIError as exc:
            log.warning("Could not delete orphaned upload %s: %s", file_id, _api_message(exc))


def _validation_name(filename: str) -> str:
    stem = filename[: -len(".jsonl")] if filename.endswith(".jsonl") else filename
    return f"{stem}.validation.jsonl"


async def upload_and_create(
    client: AsyncOpenAI,
    *,
    train_jsonl: bytes,
    valid_jsonl: bytes | None,
    model: str,
    epochs: int | None,
    suffix: str | None,
    seed: int | None = None,
    metadata: dict[str, str] | None = None,
    filename: str = "train.jsonl",
) -> JobView:
    """Upload the training (and validation) file and start a supervised fine-tuning job.

    Epochs go in `method.supervised.hyperparameters` because the top-level
    `hyperparameters` argument is deprecated; None lets OpenAI choose ("auto"). If a
    later step fails, the files already uploaded are deleted again (best effort) so a
    retry by the user does not pile up orphaned uploads.
    """
    if not train_jsonl:
        raise ValueError("the training file is empty")
    if epochs is not None and epochs < 1:
        raise ValueError("epochs must be at least 1")
    uploaded: list[str] = []
    try:
        training_file = await _upload(client, "upload_training", filename, train_jsonl)
        uploaded.append(training_file)
        validation_file = None
        if valid_jsonl:
            validation_file = await _upload(
                client, "upload_validation", _validation_name(filename), valid_jsonl
            )
            uploaded.append(validation_file)
        optional: dict[str, Any] = {
            "validation_file": validation_file,
            "suffix": suffix or None,
            "seed": seed,
            "metadata": metadata or None,
        }
        try:
            job = await client.fine_tuning.jobs.create(
                training_file=training_file,
                model=model,
                method={
                    "type": "supervised",
                    "supervised": {"hyperparameters": {"n_epochs": epochs or "auto"}},
                },
                **{k: v for k, v in optional.items() if v is not None},
            )
        except openai.OpenAIError as exc:
            raise _wrap("create", exc) from exc
    except FineTuneError:
        await _forget_files(client, uploaded)
        raise
    return _view(job)


async def _latest_metrics(client: AsyncOpenAI, job_id: str, attempts: int) -> dict | None:
    async for attempt in llm.retrying(attempts):
        with attempt:
            page = await client.fine_tuning.jobs.list_events(job_id, limit=_PROGRESS_EVENTS)
    for event in page.data:  # newest first
        if getattr(event, "type", None) == "metrics" and isinstance(event.data, dict):
            return event.data
    return None


async def retrieve(client: AsyncOpenAI, job_id: str, *, attempts: int = READ_ATTEMPTS) -> JobView:
    """The job's current state plus progress (step, losses) from its newest metrics event.

    Progress is a nicety: if the events call fails, the job is still returned, without
    progress, rather than hiding its status behind an error.
    """
    try:
        async for attempt in llm.retrying(attempts):
            with attempt:
                job = await client.fine_tuning.jobs.retrieve(job_id)
    except openai.OpenAIError as exc:
        raise _wrap("retrieve", exc) from exc
    view = _view(job)
    try:
        _apply_metrics(view, await _latest_metrics(client, job_id, attempts))
    except openai.OpenAIError as exc:
        log.warning("No progress for %s: could not read events: %s", job_id, _api_message(exc))
    return view


async def list_jobs(client: AsyncOpenAI, limit: int = 20, *, attempts: int = READ_ATTEMPTS) -> list[JobView]:
    """The newest `limit` jobs of the organization, newest first (no progress fields)."""
    try:
        async for attempt in llm.retrying(attempts):
            with attempt:
                page = await client.fine_tuning.jobs.list(limit=limit)
    except openai.OpenAIError as exc:
        raise _wrap("list", exc) from exc
    return [_view(job) for job in page.data]


async def cancel(client: AsyncOpenAI, job_id: str) -> JobView:
    """Cancel a job; tried once (a lost response would make a retry fail as "already cancelled")."""
    try:
        job = await client.fine_tuning.jobs.cancel(job_id)
    except openai.OpenAIError as exc:
        raise _wrap("cancel", exc) from exc
    return _view(job)


async def events(
    client: AsyncOpenAI, job_id: str, limit: int = 20, *, attempts: int = READ_ATTEMPTS
) -> list[dict]:
    """The newest `limit` events, newest first (the API's order).

    Each is {"created_at", "level", "message", "type", "data"}; `type` is "message" or
    "metrics" (None if the API leaves it out), `data` is the metrics dict or {}.
    """
    try:
        async for attempt in llm.retrying(attempts):
            with attempt:
                page = await client.fine_tuning.jobs.list_events(job_id, limit=limit)
    except openai.OpenAIError as exc:
        raise _wrap("events", exc) from exc
    out = [
        {
            "created_at": _int_or_none(getattr(e, "created_at", None)),
            "level": getattr(e, "level", None) or "info",
            "message": getattr(e, "message", None) or "",
            "type": getattr(e, "type", None),
            "data": e.data if isinstance(getattr(e, "data", None), dict) else {},
        }
        for e in page.data
    ]
    return out


def _decode_result(raw: bytes) -> str:
    """The CSV text of a result file.

    OpenAI has served result files base64-encoded (the cookbook decodes them); plain
    CSV passes through unchanged.
    """
    text = raw.decode("utf-8-sig", errors="replace")
    if text.lstrip().startswith("step"):
        return text
    try:
        decoded = base64.b64decode("".join(text.split()), validate=True).decode("utf-8-sig")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return text
    return decoded if decoded.lstrip().startswith("step") else text


async def result_csv(client: AsyncOpenAI, job: JobView, *, attempts: int = READ_ATTEMPTS) -> str:
    """The per-step metrics CSV of a finished job ("" if it has no result file yet)."""
    if not job.result_files:
        return ""
    try:
        async for attempt in llm.retrying(attempts):
            with attempt:
                content = await client.files.content(job.result_files[0])
    except openai.OpenAIError as exc:
        raise _wrap("result", exc) from exc
    return _decode_result(content.content)


def estimate(report: Report) -> dict:
    """The numbers a "start training?" confirmation needs, pulled from a validator `Report`.

    Counts only usable examples (`n_valid`): those are what billing in the report covers.
    `estimated_cost` is None when the price table does not know the model.
    """
    cost = report.estimated_cost
    if cost is None:
        cost_text = f"unknown (no price for {report.base_model})"
    else:
        cost_text = f"~${cost:,.2f}" if cost >= 1 or cost == 0 else f"~${cost:.4f}"
    return {
        "model": report.model,
        "ok": report.ok,
        "n_examples": report.n_valid,
        "validation_examples": report.validation_examples,
        "epochs": report.epochs,
        "recommended_epochs": report.recommended_epochs,
        "billed_tokens": report.billed_tokens,
        "price_per_1m": report.price_per_1m,
        "estimated_cost": cost,
        "cost_text": cost_text,
    }
