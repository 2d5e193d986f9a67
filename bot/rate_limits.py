"""Slack's rate limits for the calls an answer makes, shared by every bot process.

Slack limits an app per workspace and per method, not per process (platform facts):
`chat.startStream` and `chat.stopStream` are Tier 2 (about 20 a minute),
`chat.appendStream` Tier 4 (about 100), `chat.update` Tier 3 (about 50), and `chat.postMessage` about one a second per channel, each with short
bursts. Buckets in Redis (core/rate_budget.py) hold those budgets at 90%, so ten
processes spend one budget, and the bot slows itself down before Slack answers 429.

How an answer adapts when a workspace is busy:
- a native stream is used only while the stream budget lasts; otherwise placeholder edits;
- a native stream's appends wait for a buffer's worth of text and for room in the
  Tier 4 budget, so a busy workspace gets fewer, larger appends;
- intermediate edits are skipped when the edit budget runs low (they leave a reserve), so
  edits get rarer as more answers share the workspace;
- a new answer takes its final edit's call from the budget when it starts; when none is
  left it goes quiet: no placeholder, no edits, one `chat.postMessage` when it is done
  (posts have far more room: one a second per channel, several hundred a minute);
- what must be shown (a placeholder, an answer's final edit) waits for its turn, never
  longer than `MAX_WAIT`; then it goes anyway and Slack's Retry-After takes over.

If Redis is down, required calls go ahead and optional ones (native, intermediate edits)
are skipped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from redis.exceptions import RedisError

from core import rate_budget
from core.rate_budget import Limit
from core.store import Store

log = logging.getLogger(__name__)

NATIVE = Limit(per_minute=18, burst=3)  # start + stop pairs; both Tier 2 (20/min)
APPEND = Limit(per_minute=90, burst=16)  # chat.appendStream, Tier 4 (100/min)
EDIT = Limit(per_minute=45, burst=8)  # chat.update, Tier 3 (50/min)
POST = Limit(per_minute=54, burst=10)  # chat.postMessage, per channel: 1/s, "generous bursts"
POST_WORKSPACE = Limit(per_minute=270, burst=45)  # and "several hundred a minute" per workspace
# Apps distributed outside the Marketplace (SLACK_INSTALL_KIND=distributed) may call
# conversations.replies and conversations.history once a minute per workspace, 15 messages a call
HISTORY_READ = Limit(per_minute=1, burst=1)
EDIT_RESERVE = 3  # intermediate edits leave this many for new answers
MAX_WAIT = 30.0


@dataclass
class SlackRates:
    """The shared budgets, for one bot process. `native` is off with STREAMING_MODE=update,
    or for good once Slack says native streaming can't work here (per process)."""

    store: Store
    native: bool = True
    native_limit: Limit = NATIVE

    async def stream(self, team: str) -> bool:
        """May this answer use a native stream (its start and its stop)?"""
        if not self.native or self.native_limit.per_minute <= 0:
            return False
        return not await self._optional(team, {"stream": self.native_limit}, keep=0)

    async def append_wait(self, team: str) -> int:
        """More text for a native stream: 0 to send it now, else milliseconds before asking
        again (the text waits for a later, larger append, or the stop)."""
        return await self._optional(team, {"chat.appendStream": APPEND}, keep=0)

    async def edit_wait(self, team: str) -> int:
        """An intermediate edit, only while the edit budget is comfortably above empty:
        0 to edit now, else milliseconds before asking again."""
        return await self._optional(team, {"chat.update": EDIT}, keep=EDIT_RESERVE)

    async def before_edit(self, team: str) -> None:
        await self._required(team, {"chat.update": EDIT})

    async def edit_slot(self, team: str) -> bool:
        """Edit mode for a new answer: its final edit's call, taken now. When chat.update's
        budget is low the answer goes quiet instead: one post when it is done."""
        return not await self._optional(team, {"chat.update": EDIT}, keep=0)

    async def before_post(self, team: str, channel: str) -> None:
        await self._required(team, {f"chat.postMessage:{channel}": POST, "chat.postMessage": POST_WORKSPACE})

    async def history_read(self, team: str, method: str) -> bool:
        """May this workspace read `method` (conversations.replies/history) now? Only
        asked for distributed installs; a refusal means: go without, and say so."""
        return not await self._optional(team, {method: HISTORY_READ}, keep=0)

    async def _optional(self, team: str, buckets: dict[str, Limit], *, keep: int) -> int:
        try:
            return await rate_budget.take(self.store, team, buckets, keep=keep)
        except RedisError as exc:
            log.debug("Rate budget unavailable (%s): skipping an optional call", type(exc).__name__)
            return 1000

    async def _required(self, team: str, buckets: dict[str, Limit]) -> None:
        deadline = time.monotonic() + MAX_WAIT
        while True:
            try:
                wait_ms = await rate_budget.take(self.store, team, buckets)
            except RedisError as exc:
                log.debug("Rate budget unavailable (%s): calling Slack anyway", type(exc).__name__)
                return
            if not wait_ms:
                return
            if time.monotonic() + wait_ms / 1000 > deadline:
                log.warning(
                    "Slack budget %s still empty after %.0f s; calling anyway", list(buckets), MAX_WAIT
                )
                return
            await asyncio.sleep(wait_ms / 1000)
