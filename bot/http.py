"""HTTP mode: an ASGI app for uvicorn with `POST /slack/events` and `GET /healthz`.

Dependencies are created in Starlette's lifespan, inside uvicorn's loop, and closed
there too, so answers in flight finish before the process exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from dataclasses import asdict

from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.signature import SignatureVerifier
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.app import create_app
from bot.deps import close_deps, create_deps
from bot.finetune.watcher import refresh_from_webhook, start_watcher
from core.settings import Settings
from core.store import RoundTrips

log = logging.getLogger(__name__)


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


# Under a burst, acks of requests still arriving would wait behind the work that earlier
# events start. Starting that work 20 ms later lets the acks go first (measured with
# bench/turns.py part c); 20 ms is invisible next to a model's answer.
ACK_FIRST_DELAY = 0.02


async def _after_burst(work) -> None:
    await asyncio.sleep(ACK_FIRST_DELAY)
    await work


def _is_event_callback(request: Request, body: bytes) -> bool:
    if not request.headers.get("content-type", "").startswith("application/json"):
        return False
    try:
        return json.loads(body).get("type") == "event_callback"
    except (ValueError, AttributeError):
        return False


def create_asgi_app(settings: Settings) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(web: Starlette):
        deps = await create_deps(settings)
        web.state.deps = deps
        web.state.bolt = create_app(deps)
        web.state.handler = AsyncSlackRequestHandler(web.state.bolt)
        start_watcher(deps)
        log.info("HTTP mode: listening for Slack events on /slack/events")
        try:
            yield
        finally:
            await close_deps(deps)

    verifier = SignatureVerifier(settings.slack_signing_secret)

    async def slack_events(request: Request) -> Response:
        """Events are acked as soon as their signature checks out; Bolt runs after.

        An event's ack carries nothing, so there is no reason to make Slack (and every
        request queued behind this one in a burst) wait for Bolt's middleware chain.
        Commands, interactions and URL verification answer with content: Bolt handles
        those before responding.
        """
        body = await request.body()
        if not _is_event_callback(request, body):
            return await request.app.state.handler.handle(request)
        text = body.decode()
        if not verifier.is_valid_request(text, dict(request.headers)):
            return Response(status_code=401)
        headers = {k: request.headers.getlist(k) for k in request.headers.keys()}
        bolt_request = AsyncBoltRequest(body=text, query=request.url.query, headers=headers)
        deps = request.app.state.deps
        deps.tasks.spawn(_after_burst(request.app.state.bolt.async_dispatch(bolt_request)), name="dispatch")
        return Response(status_code=200)

    async def openai_webhook(request: Request) -> Response:
        """OpenAI's fine-tuning webhooks: verified, then the job is refreshed at once."""
        deps = request.app.state.deps
        if not settings.openai_webhook_secret:
            return JSONResponse(
                {"error": "webhooks are not configured (OPENAI_WEBHOOK_SECRET)"}, status_code=404
            )
        body = await request.body()
        try:
            event = deps.core.openai.webhooks.unwrap(
                body, dict(request.headers), secret=settings.openai_webhook_secret
            )
        except Exception as exc:  # InvalidWebhookSignatureError, or a malformed body
            log.warning("Rejected an OpenAI webhook: %s", type(exc).__name__)
            return JSONResponse({"error": "invalid signature"}, status_code=400)
        if getattr(event, "type", "").startswith("fine_tuning.job."):
            deps.tasks.spawn(refresh_from_webhook(deps, event.data.id))
        return JSONResponse({"ok": True})

    async def healthz(request: Request) -> Response:
        deps = request.app.state.deps
        try:
            await deps.core.store.redis.ping()
            redis_ok = True
        except Exception:
            redis_ok = False
        status = 200 if redis_ok else 503
        return JSONResponse(
            {"ok": redis_ok, "redis": redis_ok, "in_flight": deps.tasks.in_flight}, status_code=status
        )

    async def metrics(request: Request) -> Response:
        deps = request.app.state.deps
        return JSONResponse(
            {
                **asdict(deps.stats),
                "in_flight": deps.tasks.in_flight,
                "redis_round_trips": RoundTrips.count,
                **ack_percentiles(ack_samples),
            }
        )

    ack_samples: deque[float] = deque(maxlen=10_000)
    return Starlette(
        middleware=[Middleware(AckTimer, samples=ack_samples)],
        routes=[
            Route("/metrics", metrics, methods=["GET"]),
            Route("/slack/events", slack_events, methods=["POST"]),
            Route("/openai/webhooks", openai_webhook, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
