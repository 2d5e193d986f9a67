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
        log.info("HTTP mode: listening for Slack events on /slack/events")
        try:
            yield
        finally:
            await close_deps(deps)

    async def slack_events(request: Request) -> Response:
        return await request.app.state.handler.handle(request)

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
            Route("/healthz", healthz, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
