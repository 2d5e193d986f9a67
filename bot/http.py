"""HTTP mode: an ASGI app for uvicorn with `POST /slack/events` and `GET /healthz`.

Dependencies are created in Starlette's lifespan, inside uvicorn's loop, and closed
there too, so answers in flight finish before the process exits.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import deque
from dataclasses import asdict

from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
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


def create_asgi_app(settings: Settings) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(web: Starlette):
        deps = await create_deps(settings)
        web.state.deps = deps
        web.state.handler = AsyncSlackRequestHandler(create_app(deps))
        start_watcher(deps)
        log.info("HTTP mode: listening for Slack events on /slack/events")
        try:
            yield
        finally:
            await close_deps(deps)

    async def slack_events(request: Request) -> Response:
        return await request.app.state.handler.handle(request)

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
