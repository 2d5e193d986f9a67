"""Shared plumbing for the local HTTP stand-ins.

The stand-ins are real aiohttp servers bound to 127.0.0.1 on a free port and run inside the
test's own event loop, so the real SDK clients exercise their real HTTP code paths.
"""

from __future__ import annotations

import abc
import asyncio
import json
from collections.abc import Callable
from typing import Any, Self

from aiohttp import web


class LocalServer(abc.ABC):
    """Base class: owns the aiohttp runner and a change signal that waiters can block on."""

    #: how long close() lets in-flight handlers (e.g. deliberately delayed replies) finish
    shutdown_timeout: float = 0.2

    def __init__(self) -> None:
        self.host = "127.0.0.1"
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._changed = asyncio.Event()

    # -- lifecycle -------------------------------------------------------------------------

    @abc.abstractmethod
    def _build_app(self) -> web.Application:
        """The aiohttp application with the stand-in's routes."""

    async def start(self) -> None:
        """Bind 127.0.0.1 on a free port (port 0) so parallel test runs never collide."""
        if self._runner is not None:
            raise RuntimeError(f"{type(self).__name__} already started")
        app = self._build_app()
        app.on_shutdown.append(self._on_shutdown)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=self.shutdown_timeout)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def close(self) -> None:
        """Stop serving; safe to call twice."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _on_shutdown(self, app: web.Application) -> None:
        """Hook for subclasses to close long-lived connections (websockets) before cleanup."""
        return None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def base(self) -> str:
        """Root URL of the server, without trailing slash."""
        if not self.port:
            raise RuntimeError(f"{type(self).__name__} not started")
        return f"http://{self.host}:{self.port}"

    # -- waiting ---------------------------------------------------------------------------

    def _notify(self) -> None:
        """Wake every waiter; each waiter re-checks its own predicate."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait until predicate() holds (re-checked on each recorded change) or timeout; return it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                return predicate()
        return True


def short(value: Any, limit: int = 200) -> str:
    """Compact repr for assertion messages."""
    try:
        text = json.dumps(value, default=repr, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
