"""A local stand-in for the OpenAI HTTP API (chat, moderations, embeddings, files, fine-tuning).

Tests point the real ``openai.AsyncOpenAI(base_url=...)`` at it, so SSE parsing, error mapping,
timeouts and multipart uploads run through the SDK's real code. Chat replies are scripted with
``enqueue(Reply(...))``; everything received is recorded in ``requests``.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import hashlib
import io
import json
import math
import re
import struct
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ._server import LocalServer, short

MODERATION_CATEGORIES = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/instructions",
    "self-harm/intent",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)
BASE_MODELS = ("gpt-4o-mini", "gpt-4o", "gpt-4.1-mini", "text-embedding-3-small", "omni-moderation-latest")
RESULT_CSV_HEADER = ("step", "train_loss", "train_accuracy", "valid_loss", "valid_mean_token_accuracy")
TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})
METRIC_STEPS = 20
_JSON_BODY = web.RequestKey("standin_json_body", object)

_DEFAULT_ERROR_MESSAGES = {
    400: "Invalid request.",
    401: "Incorrect API key provided.",
    403: "You are not allowed to access this resource.",
    404: "Not found.",
    429: "Rate limit reached for requests.",
    500: "The server had an error while processing your request.",
    503: "The engine is currently overloaded, please try again later.",
}


@dataclass
class Reply:
    """Scripted answer for one chat.completions request (consumed FIFO)."""

    text: str = ""
    refusal: str | None = None
    status: int = 200
    error_code: str | None = None
    error_type: str | None = None
    error_message: str = ""
    retry_after: float | None = None
    #: seconds before response headers are sent (provokes client timeouts)
    delay: float = 0
    #: seconds between SSE chunks
    chunk_delay: float = 0
    chunk_size: int = 8
    #: number of SSE events (the role chunk counts) after which the connection is dropped
    cut_after: int | None = None
    #: (prompt_tokens, completion_tokens); None = rough estimate
    usage: tuple[int, int] | None = None
    #: prompt tokens served from OpenAI's prompt cache (part of prompt_tokens)
    cached_tokens: int = 0
    finish_reason: str = "stop"


@dataclass
class Recorded:
    """One HTTP request as received by the stand-in."""

    path: str
    method: str
    json: Any
    headers: dict[str, str]
    at: float
    query: dict[str, str]


@dataclass
class _Fault:
    prefix: str
    status: int
    message: str
    code: str | None


def _echo(body: dict[str, Any]) -> Reply:
    """Default reply: echo the last user message so tests can see what the model was sent."""
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                content = "".join(
                    str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text"
                )
            return Reply(text=f"Echo: {content}")
    return Reply(text="Echo: ")


def _error_type(status: int, code: str | None) -> str:
    if status == 429:
        return "insufficient_quota" if code == "insufficient_quota" else "requests"
    if status >= 500:
        return "server_error"
    if status == 403:
        return "permission_error"
    return "invalid_request_error"


def error_response(
    status: int,
    message: str = "",
    *,
    code: str | None = None,
    type: str | None = None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """An OpenAI-shaped error body, which the SDK maps to its typed exceptions."""
    body = {
        "error": {
            "message": message or _DEFAULT_ERROR_MESSAGES.get(status, f"HTTP {status}"),
            "type": type or _error_type(status, code),
            "param": param,
            "code": code,
        }
    }
    return web.json_response(body, status=status, headers=headers)


def _tokens(value: Any) -> int:
    return max(1, math.ceil(len(value if isinstance(value, str) else json.dumps(value)) / 4))


def _embed(text: str, dims: int) -> list[float]:
    """Signed hashed bag of lowercase words, L2-normalised: same words -> cosine ~1, unrelated ~0."""
    vec = [0.0] * dims
    for word in re.findall(r"\w+", text.lower()):
        h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "big")
        vec[h % dims] += 1.0 if (h >> 40) & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vec))
    if norm == 0:
        vec[0] = 1.0
        return vec
    return [v / norm for v in vec]


def _loss_rows(steps: int = METRIC_STEPS) -> list[tuple[int, float, float, float, float]]:
    """Deterministic, monotonically improving training metrics."""
    rows = []
    for step in range(1, steps + 1):
        decay = 0.88**step
        train_loss = round(2.4 * decay + 0.08, 4)
        train_acc = round(0.95 - 0.55 * decay, 4)
        rows.append((step, train_loss, train_acc, round(train_loss + 0.05, 4), round(train_acc - 0.02, 4)))
    return rows


class OpenAIStandIn(LocalServer):
    """Records OpenAI API requests and answers them from scripts; see module docstring."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[Recorded] = []
        self.default: Callable[[dict[str, Any]], Reply] = _echo
        self.moderation_flag_words: set[str] = {"FLAGME"}
        #: category reported for flagged moderation inputs
        self.moderation_category = "harassment"
        self.json_schema_supported = True
        #: API keys answered 401, as OpenAI answers a revoked or mistyped key
        self.rejected_keys: set[str] = set()
        self.files: dict[str, tuple[dict[str, Any], bytes]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.job_script: list[str] = ["validating_files", "queued", "running", "running", "succeeded"]
        self.fail_job_with: dict[str, Any] | None = None
        self._replies: deque[Reply] = deque()
        self._faults: list[_Fault] = []
        self._job_scripts: dict[str, list[str]] = {}
        self._job_pos: dict[str, int] = {}
        self._job_events: dict[str, list[dict[str, Any]]] = {}
        self._job_ticks: dict[str, int] = {}
        self._counter = 0

    # -- public helpers --------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL for AsyncOpenAI(base_url=...)."""
        return f"{self.base}/v1"

    def enqueue(self, *replies: Reply) -> None:
        self._replies.extend(replies)

    @property
    def pending_replies(self) -> int:
        """Scripted replies not yet consumed (assert 0 to catch unexpected extra/missing calls)."""
        return len(self._replies)

    def chat_requests(self) -> list[dict[str, Any]]:
        return [r.json for r in self.requests if r.path == "/v1/chat/completions" and r.method == "POST"]

    async def wait_for(self, path: str, count: int = 1, timeout: float = 5.0) -> list[Recorded]:
        """Wait until >= count requests whose path starts with `path` (with or without /v1) arrived."""

        def matching() -> list[Recorded]:
            return [r for r in self.requests if self._path_matches(r.path, path)]

        if not await self._wait_until(lambda: len(matching()) >= count, timeout):
            listing = "\n".join(f"  {r.method} {r.path} {short(r.json)}" for r in self.requests)
            raise AssertionError(
                f"expected >= {count} requests to {path} within {timeout}s, got {len(matching())}:\n"
                f"{listing or '  (none)'}"
            )
        return matching()

    def fail_next(
        self, path_prefix: str, status: int, message: str = "", code: str | None = None, times: int = 1
    ) -> None:
        """Next `times` requests whose path starts with prefix (with or without /v1) get an error."""
        self._faults.extend(_Fault(path_prefix, status, message, code) for _ in range(times))

    def add_file(self, filename: str, content: bytes, purpose: str = "fine-tune") -> dict[str, Any]:
        """Register a file as if it had been uploaded; returns its file object."""
        meta = {
            "id": f"file-{self._new_id()}",
            "object": "file",
            "bytes": len(content),
            "created_at": int(time.time()),
            "filename": filename,
            "purpose": purpose,
            "status": "processed",
            "status_details": None,
            "expires_at": None,
        }
        self.files[meta["id"]] = (meta, content)
        return meta

    def advance(self, job_id: str, status: str) -> dict[str, Any]:
        """Force a job into `status` (with the same side effects as the scripted progression)."""
        script, pos = self._job_scripts[job_id], self._job_pos[job_id]
        later = [i for i in range(pos, len(script)) if script[i] == status]
        if later:
            self._job_pos[job_id] = later[0]
        self._set_status(self.jobs[job_id], status)
        return self.jobs[job_id]

    # -- server plumbing -------------------------------------------------------------------

    def _build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=256 * 1024 * 1024)
        r = app.router
        r.add_post("/v1/chat/completions", self._chat)
        r.add_post("/v1/moderations", self._moderations)
        r.add_post("/v1/embeddings", self._embeddings)
        r.add_post("/v1/files", self._files_create)
        r.add_get("/v1/files", self._files_list)
        r.add_get("/v1/files/{id}", self._files_retrieve)
        r.add_delete("/v1/files/{id}", self._files_delete)
        r.add_get("/v1/files/{id}/content", self._files_content)
        r.add_post("/v1/fine_tuning/jobs", self._jobs_create)
        r.add_get("/v1/fine_tuning/jobs", self._jobs_list)
        r.add_get("/v1/fine_tuning/jobs/{id}", self._jobs_retrieve)
        r.add_post("/v1/fine_tuning/jobs/{id}/cancel", self._jobs_cancel)
        r.add_get("/v1/fine_tuning/jobs/{id}/events", self._jobs_events)
        r.add_get("/v1/fine_tuning/jobs/{id}/checkpoints", self._jobs_checkpoints)
        r.add_get("/v1/models", self._models_list)
        r.add_get("/v1/models/{id:.+}", self._models_retrieve)
        r.add_route("*", "/{tail:.*}", self._not_found)
        return app

    def _new_id(self) -> str:
        self._counter += 1
        return f"{self._counter:04d}{uuid.uuid4().hex[:20]}"

    @staticmethod
    def _path_matches(path: str, prefix: str) -> bool:
        return path.startswith(prefix) or path.startswith("/v1" + prefix)

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Record every request, then apply auth check and injected faults before routing."""
        body: Any = None
        if request.content_type == "application/json" and request.can_read_body:
            try:
                body = await request.json()
            except ValueError:
                body = None
        # multipart bodies are left unread here so handlers can stream them
        self.requests.append(
            Recorded(
                request.path,
                request.method,
                body,
                dict(request.headers),
                time.monotonic(),
                dict(request.query),
            )
        )
        request[_JSON_BODY] = body
        self._notify()
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return error_response(401, "You didn't provide an API key.", type="invalid_request_error")
        if auth.removeprefix("Bearer ") in self.rejected_keys:
            return error_response(
                401, "Incorrect API key provided.", code="invalid_api_key", type="invalid_request_error"
            )
        fault = next((f for f in self._faults if self._path_matches(request.path, f.prefix)), None)
        if fault is not None:
            self._faults.remove(fault)
            return error_response(fault.status, fault.message, code=fault.code)
        return await handler(request)

    async def _not_found(self, request: web.Request) -> web.Response:
        return error_response(404, f"Invalid URL ({request.method} {request.path})")

    @staticmethod
    def _page(request: web.Request, items: list[dict[str, Any]], with_ids: bool = False) -> web.Response:
        """Cursor pagination (`after`, `limit`) as the SDK's CursorPage expects."""
        after = request.query.get("after")
        if after:
            ids = [i["id"] for i in items]
            items = items[ids.index(after) + 1 :] if after in ids else []
        limit = int(request.query.get("limit", 20))
        page = items[:limit]
        body: dict[str, Any] = {"object": "list", "data": page, "has_more": len(items) > limit}
        if with_ids:
            body.update(first_id=page[0]["id"] if page else None, last_id=page[-1]["id"] if page else None)
        return web.json_response(body)

    # -- chat completions ------------------------------------------------------------------

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = request[_JSON_BODY]
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return error_response(400, "'messages' is a required property", param="messages")
        response_format = body.get("response_format") or {}
        if not self.json_schema_supported and response_format.get("type") == "json_schema":
            return error_response(
                400,
                "response_format json_schema is not supported",
                type="invalid_request_error",
                param="response_format",
            )
        reply = self._replies.popleft() if self._replies else self.default(body)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        headers = {"x-request-id": f"req_{uuid.uuid4().hex}", "openai-processing-ms": "1"}
        if reply.retry_after is not None:
            headers["retry-after"] = f"{reply.retry_after:g}"
            headers["retry-after-ms"] = str(int(reply.retry_after * 1000))
        if reply.status != 200:
            return error_response(
                reply.status,
                reply.error_message,
                code=reply.error_code,
                type=reply.error_type,
                headers=headers,
            )
        prompt, completion = reply.usage or (
            _tokens(body["messages"]),
            _tokens(reply.text or reply.refusal or "") if (reply.text or reply.refusal) else 0,
        )
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": reply.cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        }
        common = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "created": int(time.time()),
            "model": body.get("model", "gpt-4o-mini"),
            "system_fingerprint": None,
            "service_tier": "default",
        }
        if body.get("stream"):
            return await self._chat_stream(request, body, reply, usage, common, headers)
        message = {
            "role": "assistant",
            "content": reply.text if (reply.text or reply.refusal is None) else None,
            "refusal": reply.refusal,
            "annotations": [],
        }
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": reply.finish_reason}
        payload = {**common, "object": "chat.completion", "choices": [choice], "usage": usage}
        return web.json_response(payload, headers=headers)

    async def _chat_stream(
        self,
        request: web.Request,
        body: dict[str, Any],
        reply: Reply,
        usage: dict[str, Any],
        common: dict[str, Any],
        headers: dict[str, str],
    ) -> web.StreamResponse:
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            out = {**common, "object": "chat.completion.chunk", "choices": [choice]}
            return {**out, "usage": None} if include_usage else out

        size = max(1, reply.chunk_size)
        events = [chunk({"role": "assistant", "content": "", "refusal": None})]
        events += [chunk({"content": reply.text[i : i + size]}) for i in range(0, len(reply.text), size)]
        if reply.refusal:
            events += [
                chunk({"refusal": reply.refusal[i : i + size]}) for i in range(0, len(reply.refusal), size)
            ]
        events.append(chunk({}, reply.finish_reason))
        if include_usage and reply.cut_after is None:
            events.append({**common, "object": "chat.completion.chunk", "choices": [], "usage": usage})

        resp = web.StreamResponse(
            headers={
                **headers,
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
            }
        )
        resp.enable_chunked_encoding()
        try:
            await resp.prepare(request)
            for n, event in enumerate(events):
                if reply.cut_after is not None and n >= reply.cut_after:
                    break
                if n and reply.chunk_delay:
                    await asyncio.sleep(reply.chunk_delay)
                await resp.write(b"data: " + json.dumps(event).encode() + b"\n\n")
            if reply.cut_after is not None:
                # drop the TCP connection mid-body: no terminating chunk, no [DONE]
                if request.transport is not None:
                    request.transport.abort()
                return resp
            await resp.write(b"data: [DONE]\n\n")
            await resp.write_eof()
        except ConnectionError:
            pass  # client went away (timeout/cancel); nothing to report
        return resp

    # -- moderations / embeddings ----------------------------------------------------------

    async def _moderations(self, request: web.Request) -> web.Response:
        body = request[_JSON_BODY] or {}
        raw = body.get("input", "")
        if isinstance(raw, list) and raw and all(isinstance(p, dict) for p in raw):
            inputs = [" ".join(str(p.get("text", "")) for p in raw)]  # multimodal parts = one input
        else:
            inputs = [str(x) for x in raw] if isinstance(raw, list) else [str(raw)]
        words = {w.lower() for w in self.moderation_flag_words}
        results = []
        for text in inputs:
            flagged = any(w in text.lower() for w in words)
            cats = {c: flagged and c == self.moderation_category for c in MODERATION_CATEGORIES}
            scores = {c: (0.98 if cats[c] else 0.0001) for c in MODERATION_CATEGORIES}
            results.append(
                {
                    "flagged": flagged,
                    "categories": cats,
                    "category_scores": scores,
                    "category_applied_input_types": {c: ["text"] for c in MODERATION_CATEGORIES},
                }
            )
        model = body.get("model", "omni-moderation-latest")
        return web.json_response({"id": f"modr-{self._new_id()}", "model": model, "results": results})

    async def _embeddings(self, request: web.Request) -> web.Response:
        body = request[_JSON_BODY] or {}
        raw = body.get("input", "")
        if isinstance(raw, str) or (isinstance(raw, list) and raw and isinstance(raw[0], int)):
            raw = [raw]
        texts = [x if isinstance(x, str) else " ".join(map(str, x)) for x in raw]
        dims = int(body.get("dimensions") or 256)
        data = []
        for i, text in enumerate(texts):
            vec = _embed(text, dims)
            emb: Any = vec
            if body.get("encoding_format") == "base64":
                emb = base64.b64encode(struct.pack(f"<{dims}f", *vec)).decode()
            data.append({"object": "embedding", "index": i, "embedding": emb})
        tokens = sum(len(re.findall(r"\w+", t)) for t in texts)
        return web.json_response(
            {
                "object": "list",
                "data": data,
                "model": body.get("model", "text-embedding-3-small"),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    # -- files -----------------------------------------------------------------------------

    async def _files_create(self, request: web.Request) -> web.Response:
        if request.content_type != "multipart/form-data":
            return error_response(400, "Expected multipart/form-data")
        form = await request.post()
        upload, purpose = form.get("file"), form.get("purpose")
        if not isinstance(upload, web.FileField):
            return error_response(400, "Missing file", param="file")
        if not purpose:
            return error_response(400, "Missing purpose", param="purpose")
        return web.json_response(self.add_file(upload.filename or "file", upload.file.read(), str(purpose)))

    def _file_or_404(self, request: web.Request) -> tuple[dict[str, Any], bytes] | web.Response:
        file_id = request.match_info["id"]
        if file_id not in self.files:
            return error_response(404, f"No such File object: {file_id}", param="id")
        return self.files[file_id]

    async def _files_list(self, request: web.Request) -> web.Response:
        purpose = request.query.get("purpose")
        items = [m for m, _ in reversed(self.files.values()) if not purpose or m["purpose"] == purpose]
        return self._page(request, items, with_ids=True)

    async def _files_retrieve(self, request: web.Request) -> web.Response:
        found = self._file_or_404(request)
        return found if isinstance(found, web.Response) else web.json_response(found[0])

    async def _files_delete(self, request: web.Request) -> web.Response:
        found = self._file_or_404(request)
        if isinstance(found, web.Response):
            return found
        del self.files[found[0]["id"]]
        return web.json_response({"id": found[0]["id"], "object": "file", "deleted": True})

    async def _files_content(self, request: web.Request) -> web.Response:
        found = self._file_or_404(request)
        if isinstance(found, web.Response):
            return found
        return web.Response(body=found[1], content_type="application/octet-stream")

    # -- fine-tuning -----------------------------------------------------------------------

    def _event(
        self, job_id: str, message: str, level: str = "info", data: dict[str, Any] | None = None
    ) -> None:
        self._job_events[job_id].append(
            {
                "object": "fine_tuning.job.event",
                "id": f"ftevent-{self._new_id()}",
                "created_at": int(time.time()),
                "level": level,
                "message": message,
                "type": "metrics" if data else "message",
                "data": data or {},
            }
        )

    def _set_status(self, job: dict[str, Any], status: str) -> None:
        """Apply a status transition and its side effects (events, model name, result file)."""
        job_id = job["id"]
        if status == "succeeded" and self.fail_job_with is not None:
            status = "failed"
        job["status"] = status
        if status == "queued":
            self._event(job_id, "Files validated, moving job to queued state")
        elif status == "running":
            tick = self._job_ticks[job_id] = self._job_ticks.get(job_id, 0) + 1
            if tick == 1:
                self._event(job_id, "Fine-tuning job started")
            rows = _loss_rows()
            step, train_loss, train_acc, valid_loss, valid_acc = rows[min(tick * 5, len(rows)) - 1]
            metrics = {
                "step": step,
                "train_loss": train_loss,
                "train_mean_token_accuracy": train_acc,
                "valid_loss": valid_loss,
                "valid_mean_token_accuracy": valid_acc,
                "total_steps": METRIC_STEPS,
            }
            self._event(job_id, f"Step {step}/{METRIC_STEPS}: training loss={train_loss}", data=metrics)
        elif status == "succeeded":
            short_id = job_id.removeprefix("ftjob-")[:8]
            suffix = job.get("user_provided_suffix") or ""
            job["fine_tuned_model"] = f"ft:{job['model']}:threadwise:{suffix}:{short_id}"
            training = self.files.get(job["training_file"])
            epochs = job["hyperparameters"].get("n_epochs")
            epochs = epochs if isinstance(epochs, int) else 3
            job["trained_tokens"] = (len(training[1]) // 4 if training else 1000) * epochs
            job["finished_at"] = int(time.time())
            out = io.StringIO()
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(RESULT_CSV_HEADER)
            writer.writerows(_loss_rows())
            result = self.add_file("step_metrics.csv", out.getvalue().encode(), "fine-tune-results")
            job["result_files"] = [result["id"]]
            self._event(job_id, f"New fine-tuned model created: {job['fine_tuned_model']}")
            self._event(job_id, "The job has successfully completed")
        elif status == "failed":
            err = dict(self.fail_job_with or {"code": "server_error", "message": "Fine-tuning job failed."})
            job["error"] = {"code": err.get("code"), "message": err.get("message"), "param": err.get("param")}
            job["finished_at"] = int(time.time())
            self._event(job_id, f"Fine-tuning job failed: {job['error']['message']}", level="error")
        elif status == "cancelled":
            job["finished_at"] = int(time.time())
            self._event(job_id, "Fine-tuning job cancelled")

    def _job_or_404(self, request: web.Request) -> dict[str, Any] | web.Response:
        job_id = request.match_info["id"]
        if job_id not in self.jobs:
            return error_response(404, f"Could not find fine-tune job: {job_id}", param="fine_tuning_job_id")
        return self.jobs[job_id]

    async def _jobs_create(self, request: web.Request) -> web.Response:
        body = request[_JSON_BODY]
        if not isinstance(body, dict) or not body.get("model") or not body.get("training_file"):
            return error_response(400, "model and training_file are required", param="training_file")
        for key in ("training_file", "validation_file"):
            if body.get(key) and body[key] not in self.files:
                return error_response(400, f"invalid {key}: {body[key]}", code="invalid_file", param=key)
        method = body.get("method") or {"type": "supervised"}
        sent_hp = body.get("hyperparameters") or (method.get(method.get("type", ""), {}) or {}).get(
            "hyperparameters", {}
        )
        hyper = {"n_epochs": "auto", "batch_size": "auto", "learning_rate_multiplier": "auto", **sent_hp}
        job_id = f"ftjob-{self._new_id()}"
        job = {
            "object": "fine_tuning.job",
            "id": job_id,
            "model": body["model"],
            "created_at": int(time.time()),
            "finished_at": None,
            "fine_tuned_model": None,
            "organization_id": "org-threadwise",
            "result_files": [],
            "status": "",
            "training_file": body["training_file"],
            "validation_file": body.get("validation_file"),
            "hyperparameters": hyper,
            "method": method,
            "trained_tokens": None,
            "error": None,
            "seed": body.get("seed", 42),
            "user_provided_suffix": body.get("suffix"),
            "metadata": body.get("metadata"),
            "integrations": body.get("integrations") or [],
            "estimated_finish": None,
        }
        self.jobs[job_id] = job
        self._job_scripts[job_id] = list(self.job_script) or ["validating_files"]
        self._job_pos[job_id] = 0
        self._job_events[job_id] = []
        self._event(job_id, f"Created fine-tuning job: {job_id}")
        self._event(job_id, f"Validating training file: {job['training_file']}")
        self._set_status(job, self._job_scripts[job_id][0])
        return web.json_response(job)

    async def _jobs_list(self, request: web.Request) -> web.Response:
        return self._page(request, list(reversed(self.jobs.values())))

    async def _jobs_retrieve(self, request: web.Request) -> web.Response:
        """Each retrieve moves a non-terminal job one step along its script."""
        job = self._job_or_404(request)
        if isinstance(job, web.Response):
            return job
        script = self._job_scripts[job["id"]]
        pos = self._job_pos[job["id"]]
        if job["status"] not in TERMINAL_STATUSES and pos + 1 < len(script):
            self._job_pos[job["id"]] = pos + 1
            self._set_status(job, script[pos + 1])
        return web.json_response(job)

    async def _jobs_cancel(self, request: web.Request) -> web.Response:
        job = self._job_or_404(request)
        if isinstance(job, web.Response):
            return job
        if job["status"] in TERMINAL_STATUSES:
            return error_response(400, f"Job {job['id']} has already {job['status']}.", code="invalid_state")
        self._set_status(job, "cancelled")
        return web.json_response(job)

    async def _jobs_events(self, request: web.Request) -> web.Response:
        job = self._job_or_404(request)
        if isinstance(job, web.Response):
            return job
        return self._page(request, list(reversed(self._job_events[job["id"]])))

    async def _jobs_checkpoints(self, request: web.Request) -> web.Response:
        job = self._job_or_404(request)
        if isinstance(job, web.Response):
            return job
        items = []
        if job["status"] == "succeeded":
            rows = _loss_rows()
            for step in (METRIC_STEPS, METRIC_STEPS * 2 // 3, METRIC_STEPS // 3):  # newest first
                _, train_loss, train_acc, valid_loss, valid_acc = rows[step - 1]
                items.append(
                    {
                        "object": "fine_tuning.job.checkpoint",
                        "id": f"ftckpt_{job['id'].removeprefix('ftjob-')[:8]}{step:03d}",
                        "created_at": job["finished_at"],
                        "fine_tuned_model_checkpoint": f"{job['fine_tuned_model']}:ckpt-step-{step}",
                        "fine_tuning_job_id": job["id"],
                        "step_number": step,
                        "metrics": {
                            "step": step,
                            "train_loss": train_loss,
                            "train_mean_token_accuracy": train_acc,
                            "valid_loss": valid_loss,
                            "valid_mean_token_accuracy": valid_acc,
                            "full_valid_loss": valid_loss,
                            "full_valid_mean_token_accuracy": valid_acc,
                        },
                    }
                )
        return self._page(request, items, with_ids=True)

    # -- models ----------------------------------------------------------------------------

    def _model_ids(self) -> list[str]:
        tuned = [j["fine_tuned_model"] for j in self.jobs.values() if j.get("fine_tuned_model")]
        return [*BASE_MODELS, *tuned]

    @staticmethod
    def _model(model_id: str) -> dict[str, Any]:
        owner = "threadwise" if model_id.startswith("ft:") else "openai"
        return {"id": model_id, "object": "model", "created": 1700000000, "owned_by": owner}

    async def _models_list(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [self._model(m) for m in self._model_ids()]})

    async def _models_retrieve(self, request: web.Request) -> web.Response:
        model_id = request.match_info["id"]
        if model_id not in self._model_ids():
            return error_response(404, f"The model '{model_id}' does not exist", code="model_not_found")
        return web.json_response(self._model(model_id))
