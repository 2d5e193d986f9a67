"""Background work spawned from listeners: bounded, tracked, drained on shutdown.

Bolt starts every listener with `asyncio.ensure_future` and forgets it. We keep our own
set of tasks so shutdown can wait for answers in flight, and a semaphore so a burst of
events queues instead of exhausting memory or connection pools.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)


class TaskRunner:
    def __init__(self, limit: int) -> None:
        self._semaphore = asyncio.Semaphore(limit)
        self._tasks: set[asyncio.Task] = set()

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str = "") -> asyncio.Task:
        task = asyncio.create_task(self._run(coro), name=name or None)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _run(self, coro: Coroutine[Any, Any, Any]) -> None:
        async with self._semaphore:
            try:
                await coro
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("Background task failed")

    async def drain(self, timeout: float = 30.0) -> None:
        """Let answers in flight finish; cancel what is still running after `timeout`."""
        if not self._tasks:
            return
        done, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
