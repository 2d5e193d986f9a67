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
import re
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


_CLAIM = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) > tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
return 1
"""


async def forget_due(
    store: Store, *, now: float | None = None, client_id: str = "", lease_seconds: float = 600
) -> list[str]:
    """Forget every workspace whose grace period is over; the teams forgotten.

    An entry is claimed by moving its time a lease ahead, and removed only once its data
    is gone: two processes never forget one workspace at once, and one that fails or dies
    halfway is retried after the lease, so the data policy holds."""
    now = time.time() if now is None else now
    queue = keys.forget_queue(store.prefix)
    due = await store.redis.zrangebyscore(queue, "-inf", now, start=0, num=10)
    done = []
    claim = store.redis.register_script(_CLAIM)
    for raw in due:
        team = raw.decode() if isinstance(raw, bytes) else raw
        if not await claim(keys=[queue], args=[team, now, now + lease_seconds]):
            continue  # another process took it
        try:
            await forget(store, team, client_id=client_id)
        except ValueError:
            log.error("Dropped a forget request for %r: not a team id", team)
        await store.redis.zrem(queue, team)
        done.append(team)
    return done


TEAM_ID = re.compile(r"^[TE][A-Z0-9]{1,30}$")


async def forget(store: Store, team: str, *, client_id: str = "") -> int:
    """Delete everything of `team`; the number of keys deleted. `team` must be a Slack
    team (or enterprise) id: it goes into SCAN patterns, where `*` would match every team."""
    if not TEAM_ID.match(team):
        raise ValueError(f"{team!r} is not a Slack team id (T… or E…)")
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
    batch.append(keys.team_placement(store.prefix, client_id, team))
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
    bad = [t for t in args.teams if not TEAM_ID.match(t)]
    if bad:
        print(f"Not Slack team ids (T… or E…): {', '.join(bad)}", file=sys.stderr)
        return 2
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
