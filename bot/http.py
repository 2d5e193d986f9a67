"""HTTP mode: an ASGI app for uvicorn with `POST /slack/events` and `GET /healthz`.

Dependencies are created in Starlette's lifespan, inside uvicorn's loop, and closed
there too, so answers in flight finish before the process exits.
"""

from __future__ import annotations

import contextlib
import logging

from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.app import create_app
from bot.deps import close_deps, create_deps
from core.settings import Settings

log = logging.getLogger(__name__)


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

    return Starlette(
        routes=[
            Route("/slack/events", slack_events, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
