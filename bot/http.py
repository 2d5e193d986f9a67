"""HTTP mode: an ASGI app for uvicorn with `POST /slack/events` and `GET /healthz`.

Dependencies are created in Starlette's lifespan, inside uvicorn's loop, and closed
there too, so answers in flight finish before the process exits.

Anyone on the internet can reach the two POST routes, so each request is checked in
the order that costs an unknown sender least: its size (before reading), its signature
(before parsing), then its shape (before any handler sees it). Bad input is answered
with a 4xx; a 500 means a bug of ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from dataclasses import asdict
from urllib.parse import parse_qsl

from openai import InvalidWebhookSignatureError
from slack_bolt.adapter.starlette.async_handler import to_starlette_response
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.signature import SignatureVerifier
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from bot import intake
from bot.app import create_app
from bot.deps import close_deps, create_deps
from bot.finetune.watcher import refresh_from_webhook, start_watcher
from bot.recovery import start_recovery
from core.settings import Settings
from core.store import RoundTrips, ping

log = logging.getLogger(__name__)

# Slack's largest payloads are interactions that carry a whole message or modal: 50 (or
# 100) blocks of at most 3,000 characters, plus the view's state, a few hundred KB at
# worst after JSON escaping. OpenAI's webhook events carry only ids. 1 MiB is room for
# both, and is all an unsigned sender can make us buffer before we check who it is.
MAX_BODY_BYTES = 1024 * 1024

# Slack's deepest payloads (a rich-text list in a message in an event or an action) nest
# a dozen or so levels. Far deeper is not Slack's, and would reach our handlers as a
# RecursionError waiting to happen (json.loads itself gives up only near Python's
# recursion limit, wherever the stack happens to be).
MAX_JSON_DEPTH = 64

# Slack's SSL check for slash commands is the one request it sends unsigned: a short
# form `ssl_check=1&token=...`, answered with an empty 200.
SSL_CHECK_MAX_BYTES = 512


class Refused(Exception):
    """A request answered with `status` before any handler sees it."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


async def _refused(request: Request, exc: Refused) -> Response:
    return PlainTextResponse(exc.reason, status_code=exc.status)


async def read_capped_body(request: Request, cap: int = MAX_BODY_BYTES) -> bytes:
    """The body, or 413 as soon as it is known to pass `cap`.

    A declared Content-Length over the cap is refused before a byte is read; a chunked
    (or slow) body is read piece by piece and dropped once it passes the cap, so a
    50 MB upload costs us at most 1 MiB of memory and no parsing.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            length = int(declared)
        except ValueError:
            raise Refused(400, "invalid Content-Length") from None
        if length > cap:
            raise Refused(413, "body too large")
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > cap:
                raise Refused(413, "body too large")
    except ClientDisconnect:  # gone mid-upload: nobody to answer, nothing to log as our error
        raise Refused(400, "client disconnected") from None
    return bytes(body)


def _decode(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise Refused(400, "body is not UTF-8") from None


def _too_deep(value: object, limit: int = MAX_JSON_DEPTH) -> bool:
    """Nesting depth checked without recursion, so the check can't overflow the stack."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def _is_ssl_check(request: Request, text: str) -> bool:
    if len(text) > SSL_CHECK_MAX_BYTES:
        return False
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return False
    fields = dict(parse_qsl(text, keep_blank_values=True))
    return fields.get("ssl_check") == "1" and set(fields) <= {"ssl_check", "token"}


def _signed_by_slack(verifier: SignatureVerifier, text: str, request: Request) -> bool:
    try:
        return verifier.is_valid(
            text,
            request.headers.get("x-slack-request-timestamp"),
            request.headers.get("x-slack-signature"),
        )
    except ValueError:  # a timestamp that isn't a number
        return False


def _bolt_request(request: Request, text: str) -> AsyncBoltRequest:
    """Parse a verified body the way Bolt will, answering 400 to anything malformed.

    Bolt parses in AsyncBoltRequest's constructor and then reads fields from the result;
    a body that is not JSON (or whose `payload` field is not), a JSON array, or a field
    of the wrong type fails there. None of that is a bug of ours.
    """
    headers = {k: request.headers.getlist(k) for k in request.headers.keys()}
    try:
        bolt_request = AsyncBoltRequest(body=text, query=request.url.query, headers=headers)
    except (ValueError, RecursionError, TypeError, AttributeError, KeyError, IndexError) as exc:
        log.info("Refused a malformed Slack request: %s", type(exc).__name__)
        raise Refused(400, "malformed body") from None
    if not isinstance(bolt_request.body, dict) or _too_deep(bolt_request.body):
        raise Refused(400, "malformed body")
    return bolt_request


class AckTimer:
    """Server-side time from a Slack request's arrival to its response, last 10,000."""

    def __init__(self, app, samples: deque[float]) -> None:
        self.app = app
        self.samples = samples

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] != "/slack/events":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed_send(message) -> None:
            if message["type"] == "http.response.start":
                self.samples.append(time.perf_counter() - started)
            await send(message)

        await self.app(scope, receive, timed_send)


def ack_percentiles(samples: deque[float]) -> dict[str, float]:
    if not samples:
        return {}
    ordered = sorted(samples)

    def ms(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)

    return {"acks": len(ordered), "ack_p50_ms": ms(0.5), "ack_p99_ms": ms(0.99), "ack_max_ms": ms(1.0)}


def counters(values: dict[str, object]) -> dict[str, int | float]:
    """Only numbers leave through /metrics, whatever Stats grows to hold.

    /metrics is unauthenticated; an id, a URL or an error message added to Stats for
    debugging must not become readable by anyone who can reach the port.
    """
    return {k: v for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


# Under a burst, acks of requests still arriving would wait behind the work that earlier
# events start. That work starts 20 ms later, and not while acks are still being written
# (up to half a second): measured with bench/turns.py part c and bench/cluster.py single;
# it is invisible next to a model's answer.
ACK_FIRST_DELAY = 0.02
ACK_FIRST_MAX = 0.5


async def _after_burst(deps, work) -> None:
    await asyncio.sleep(ACK_FIRST_DELAY)
    waited = ACK_FIRST_DELAY
    while deps.acking and waited < ACK_FIRST_MAX:
        await asyncio.sleep(0.005)
        waited += 0.005
    await work


def create_asgi_app(settings: Settings) -> Starlette:
    """The app uvicorn serves; its deps are made and closed in its lifespan.

    Route handlers are module-level and reach what they share through `app.state`:
    `settings`, the Slack `verifier` and the `ack_samples` the AckTimer fills are set
    here; `deps` and `bolt` once the lifespan has started inside uvicorn's loop.
    """
    ack_samples: deque[float] = deque(maxlen=10_000)
    web = Starlette(
        middleware=[Middleware(AckTimer, samples=ack_samples)],
        routes=[
            Route("/metrics", metrics, methods=["GET"]),
            Route("/slack/events", slack_events, methods=["POST"]),
            Route("/openai/webhooks", openai_webhook, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/slack/install", slack_oauth, methods=["GET"]),
            Route("/slack/oauth_redirect", slack_oauth, methods=["GET"]),
        ],
        exception_handlers={Refused: _refused},
        lifespan=_lifespan,
    )
    web.state.settings = settings
    web.state.verifier = SignatureVerifier(settings.slack_signing_secret)
    web.state.ack_samples = ack_samples
    return web


@contextlib.asynccontextmanager
async def _lifespan(web: Starlette):
    """Deps are created inside uvicorn's loop (their clients bind to it) and closed there,
    so answers in flight finish before the process exits."""
    deps = await create_deps(web.state.settings)
    web.state.deps = deps
    web.state.bolt = create_app(deps)
    start_watcher(deps)
    start_recovery(deps)
    log.info("HTTP mode: listening for Slack events on /slack/events")
    try:
        yield
    finally:
        await close_deps(deps)


async def slack_events(request: Request) -> Response:
    """Every request is size-capped and signature-checked before it is parsed.

    Events are then acked at once and Bolt runs after: an event's ack carries
    nothing, so there is no reason to make Slack (and every request queued behind
    this one in a burst) wait for Bolt's middleware chain. Commands, interactions
    and URL verification answer with content: Bolt handles those before responding.
    Bolt checks the signature again; that costs one HMAC and keeps its guard on.
    """
    text = _decode(await read_capped_body(request))
    if not _signed_by_slack(request.app.state.verifier, text, request):
        if _is_ssl_check(request, text):
            return Response(status_code=200)
        return Response(status_code=401)
    bolt_request = _bolt_request(request, text)
    bolt = request.app.state.bolt
    if bolt_request.body.get("type") == "event_callback":
        deps = request.app.state.deps
        deps.acking += 1
        try:
            await intake.accept(deps, bolt_request.body, text)  # kept before the ack: never lost
        finally:
            deps.acking -= 1
        deps.tasks.spawn(_after_burst(deps, bolt.async_dispatch(bolt_request)), name="dispatch")
        return Response(status_code=200)
    return to_starlette_response(await bolt.async_dispatch(bolt_request))


class _Window:
    """At most `limit` events per `seconds`, per process (install pages: states in Redis)."""

    def __init__(self, limit: int, seconds: float) -> None:
        self.limit, self.seconds, self.times = limit, seconds, deque()

    def take(self, now: float) -> bool:
        while self.times and self.times[0] <= now - self.seconds:
            self.times.popleft()
        if len(self.times) >= self.limit:
            return False
        self.times.append(now)
        return True


_install_pages = _Window(limit=120, seconds=60.0)


async def slack_oauth(request: Request) -> Response:
    """Slack's install flow, when the app is installed in many workspaces: the install
    page (which sets the state cookie) and the redirect back from Slack (state checked
    and consumed, code exchanged with oauth.v2.access, installation saved)."""
    flow = request.app.state.bolt.oauth_flow
    if flow is None:
        return PlainTextResponse(
            "This app is installed with a token (SLACK_BOT_TOKEN): nothing to install here.", 404
        )
    bolt_request = AsyncBoltRequest(body="", query=request.url.query, headers=dict(request.headers))
    if request.url.path == flow.install_path:
        # Anyone may open it, and each visit keeps a state in Redis for ten minutes: a
        # flood of visits is turned away here rather than filling Redis.
        if not _install_pages.take(time.monotonic()):
            return PlainTextResponse("Too many install attempts; try again in a minute.", 429)
        return to_starlette_response(await flow.handle_installation(bolt_request))
    return to_starlette_response(await flow.handle_callback(bolt_request))


async def openai_webhook(request: Request) -> Response:
    """OpenAI's fine-tuning webhooks: capped, verified, parsed, then the job refreshed."""
    deps = request.app.state.deps
    secret = request.app.state.settings.openai_webhook_secret
    if not secret:
        return JSONResponse({"error": "webhooks are not configured (OPENAI_WEBHOOK_SECRET)"}, status_code=404)
    body = await read_capped_body(request)
    try:
        deps.core.openai.webhooks.verify_signature(body, dict(request.headers), secret=secret)
    except (InvalidWebhookSignatureError, ValueError) as exc:  # ValueError: a header missing, not UTF-8
        log.warning("Rejected an OpenAI webhook: %s", type(exc).__name__)
        return JSONResponse({"error": "invalid signature"}, status_code=400)
    job_id = _fine_tuning_job_id(_webhook_event(body))
    if job_id is not None:
        deps.tasks.spawn(refresh_from_webhook(deps, job_id))
    return JSONResponse({"ok": True})


def _webhook_event(body: bytes) -> dict:
    """A verified webhook body as a JSON object, answering 400 to anything malformed.

    Verified means OpenAI sent it, not that it is well formed; a body we can't read is
    still the sender's mistake, not a bug of ours (so not a 500).
    """
    try:
        event = json.loads(_decode(body))
    except (ValueError, RecursionError):
        raise Refused(400, "malformed body") from None
    if not isinstance(event, dict) or _too_deep(event):
        raise Refused(400, "malformed body")
    return event


def _fine_tuning_job_id(event: dict) -> str | None:
    """The job a `fine_tuning.job.*` event is about; None for other event types.

    Other types are acknowledged and ignored (OpenAI sends what the endpoint is
    subscribed to); a fine-tuning event without a job id is refused with a 400.
    """
    event_type = event.get("type")
    if not (isinstance(event_type, str) and event_type.startswith("fine_tuning.job.")):
        return None
    data = event.get("data")
    job_id = data.get("id") if isinstance(data, dict) else None
    if not isinstance(job_id, str) or not job_id:
        raise Refused(400, "fine-tuning event without data.id")
    return job_id


async def healthz(request: Request) -> Response:
    """Up or down, and nothing else: this route answers anyone who can reach the port."""
    deps = request.app.state.deps
    redis_ok = await ping(deps.core.store)
    status = 200 if redis_ok else 503
    return JSONResponse(
        {"ok": redis_ok, "redis": redis_ok, "in_flight": deps.tasks.in_flight}, status_code=status
    )


async def metrics(request: Request) -> Response:
    """Counters and ack latency percentiles; `counters` lets only numbers out."""
    deps = request.app.state.deps
    return JSONResponse(
        counters(
            {
                **asdict(deps.stats),
                "in_flight": deps.tasks.in_flight,
                "redis_round_trips": RoundTrips.count,
                **ack_percentiles(request.app.state.ack_samples),
            }
        )
    )
