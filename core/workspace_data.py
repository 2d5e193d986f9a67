"""A workspace's data, and forgetting it: when the app is uninstalled (after a grace
period, UNINSTALL_GRACE_DAYS) or at once with `./tw forget-workspace T…`.

A workspace's data is every key under its workspace hash tag (personas, schemas,
settings, datasets, jobs, audit, usage, prices, rate budgets) and every conversation of
its threads, plus its entries in the shared indexes (open turns, watched jobs) and its
installation. Conversations are spread over the cluster by thread, so they are found by
SCAN on every primary: slow for a big workspace, and run only on uninstall.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time

from core import keys
from core.settings import Settings
from core.store import Store, close_store, create_store

log = logging.getLogger(__name__)

BATCH = 500


async def schedule_forget(store: Store, team: str, *, after_seconds: float, now: float | None = None) -> None:
    """Forget `team` once `after_seconds` have passed (a reinstall before then cancels it)."""
    now = time.time() if now is None else now
    await store.redis.zadd(keys.forget_queue(store.prefix), {team: now + after_seconds})


async def cancel_forget(store: Store, team: str) -> None:
    await store.redis.zrem(keys.forget_queue(store.prefix), team)


async def forget_due(store: Store, *, now: float | None = None) -> list[str]:
    """Forget every workspace whose grace period is over; the teams forgotten."""
    now = time.time() if now is None else now
    due = await store.redis.zrangebyscore(keys.forget_queue(store.prefix), "-inf", now, start=0, num=10)
    done = []
    for raw in due:
        team = raw.decode() if isinstance(raw, bytes) else raw
        # whoever removes it from the queue forgets it: two processes never both do
        if await store.redis.zrem(keys.forget_queue(store.prefix), team):
            await forget(store, team)
            done.append(team)
    return done


async def forget(store: Store, team: str, *, client_id: str = "") -> int:
    """Delete everything of `team`; the number of keys deleted."""
    deleted = 0
    batch: list = []

    async def flush() -> None:
        nonlocal deleted
        if batch:
            pipe = store.redis.pipeline(transaction=False)
            for key in batch:
                pipe.execute_command("UNLINK", key)  # the cluster pipeline has no unlink helper
            deleted += sum(await pipe.execute())
            batch.clear()

    for pattern in keys.workspace_patterns(store.prefix, team):
        async for key in store.redis.scan_iter(match=pattern, count=BATCH):
            batch.append(key)
            if len(batch) >= BATCH:
                await flush()
    await flush()
    installation = keys.installation(store.prefix, client_id, f"*-{team}")
    async for key in store.redis.scan_iter(match=f"{installation.base}:*", count=BATCH):
        batch.append(key)
    await flush()
    index = keys.open_turns(store.prefix)
    stale = [m async for m, _ in store.redis.zscan_iter(index, match=f"{team}:*")]
    if stale:
        await store.redis.zrem(index, *stale)
    jobs = keys.finetune_jobs(store.prefix)
    theirs = [job for job, owner in (await store.redis.hgetall(jobs)).items() if owner.decode() == team]
    if theirs:
        await store.redis.hdel(jobs, *theirs)
    log.info("Forgot workspace %s: %d keys", team, deleted)
    return deleted


async def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="./tw forget-workspace", description="Delete every piece of data of the given workspaces, now."
    )
    parser.add_argument("teams", nargs="+", metavar="T…", help="workspace (team) ids")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    store = await create_store(settings)
    try:
        for team in args.teams:
            n = await forget(store, team, client_id=settings.slack_client_id)
            await cancel_forget(store, team)
            print(f"{team}: {n} keys deleted")
    finally:
        await close_store(store)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(_main(sys.argv[1:])))
