"""Answering the turns of a process that died: any process adopts them.

A process that holds a thread's lease (core/turn_queue.py) and dies stops renewing it.
Every process runs `recover_forever`; once per scan interval one of them (a short Redis
key decides which, so they don't all scan) reads the shared index of threads whose lease
may have run out, adopts each one that did, and answers its queued turns here. So a turn
acknowledged by a killed process is answered within the lease plus one scan interval.
"""

from __future__ import annotations

import asyncio
import logging

from redis.exceptions import RedisError

from bot import intake, workspaces
from bot.deps import BotDeps
from bot.turns import hold, take_turns
from core import conversations, turn_queue, workspace_data

log = logging.getLogger(__name__)


def scan_interval(deps: BotDeps) -> float:
    """A quarter of the lease: adoption comes soon after a lease runs out."""
    return max(0.25, deps.settings.turn_lease_seconds / 4)


async def recover_once(deps: BotDeps) -> int:
    """One scan, if it is this process's turn to scan; the number of threads adopted."""
    store = deps.core.store
    interval_ms = int(scan_interval(deps) * 1000)
    if not await turn_queue.take_scan(store, deps.instance_id, interval_ms):
        return 0
    adopted = 0
    for conv_id, score in await turn_queue.due(store):
        try:
            async with workspaces.acting_for(deps, conv_id.split(":", 1)[0]) as installed:
                if not installed:  # uninstalled since: nobody to answer with
                    await turn_queue.forget(store, conv_id, score)
                    continue
                adopted += await _look_at(deps, conv_id, score)
        except RedisError:
            raise
        except Exception:  # one bad entry must not stop every scan after it
            log.exception("Recovery of %s failed; looking again later", conv_id)
            await turn_queue.look_later(store, conv_id, 10 * deps.settings.turn_lease_ms)
    if deps.installations is not None and not deps.forgetting:  # uninstalled, past their grace
        deps.forgetting = True  # in its own task: a big workspace's SCAN mustn't hold up recovery

        async def forget() -> None:
            try:
                await workspace_data.forget_due(store, client_id=deps.settings.slack_client_id)
            except RedisError as exc:
                log.warning("Forgetting uninstalled workspaces failed: %s (retried)", type(exc).__name__)
            finally:
                deps.forgetting = False

        deps.tasks.spawn(forget(), name="forget-workspaces")
    return adopted


async def _look_at(deps: BotDeps, conv_id: str, score: float) -> int:
    store = deps.core.store
    step = await conversations.adopt(deps.core, conv_id, owner=deps.instance_id)
    for raw in step.orphans:  # acked by a process that died before queueing them
        deps.tasks.spawn(intake.replay(deps, raw), name=f"replay:{conv_id}")
    if step.status == "lead":
        log.warning("Adopted the queued turns of %s (their process stopped)", conv_id)
        held = hold(deps, step.opened.lease)  # renewed from now, not from a free task slot
        deps.tasks.spawn(take_turns(deps, step.opened, held), name=f"adopted:{conv_id}")
        return 1
    if step.status == "busy":
        await turn_queue.look_later(store, conv_id, step.retry_in_ms)
    else:  # idle: nothing queued, nobody holding it, nothing in its inbox
        await turn_queue.forget(store, conv_id, score)
    return 0


async def kick(deps: BotDeps, conv_id: str) -> None:
    """A thread's event left its inbox without being queued (a thread command, a flagged
    message): a later message may have been waiting for it, with nobody holding the
    lease. Take the queue now rather than at the next scan."""
    step = await conversations.adopt(deps.core, conv_id, owner=deps.instance_id, polite=True)
    for raw in step.orphans:
        deps.tasks.spawn(intake.replay(deps, raw), name=f"replay:{conv_id}")
    if step.status == "lead":
        held = hold(deps, step.opened.lease)
        deps.tasks.spawn(take_turns(deps, step.opened, held), name=f"kicked:{conv_id}")


async def recover_forever(deps: BotDeps) -> None:
    interval = scan_interval(deps)
    while not deps.stopping.is_set():
        try:
            await recover_once(deps)
        except asyncio.CancelledError:
            raise
        except RedisError as exc:
            log.warning("Recovery scan failed: %s", type(exc).__name__)
        except Exception:
            log.exception("Recovery scan failed")
        try:
            await asyncio.wait_for(deps.stopping.wait(), timeout=interval)
        except TimeoutError:
            pass


def start_recovery(deps: BotDeps) -> None:
    deps.background.append(asyncio.create_task(recover_forever(deps), name="turn-recovery"))
