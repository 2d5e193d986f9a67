"""Socket Mode: a websocket to Slack, opened through the same client (and SLACK_API_URL)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

from bot import intake
from bot.app import create_app
from bot.deps import BotDeps, close_deps, create_deps
from bot.finetune.watcher import start_watcher
from bot.recovery import start_recovery
from core.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class SocketModeBot:
    deps: BotDeps
    handler: AsyncSocketModeHandler

    async def close(self) -> None:
        await self.handler.close_async()
        await close_deps(self.deps)


async def open_socket_mode(settings: Settings) -> SocketModeBot:
    """Connect and start receiving events; `apps.connections.open` follows the client's base URL."""
    deps = await create_deps(settings)
    try:
        app = create_app(deps)
        intake.accept_before_ack(app, deps)
        handler = AsyncSocketModeHandler(app, settings.slack_app_token)
        await handler.connect_async()
        start_watcher(deps)
        start_recovery(deps)
    except Exception:
        await close_deps(deps)
        raise
    log.info("Socket Mode: connected")
    return SocketModeBot(deps, handler)
