"""App Home with a big workspace: Redis round trips and bot time per publish, printed.

    .venv/bin/python -m bench.app_home              # 100 personas, 50 jobs, 30 days of usage
    .venv/bin/python -m bench.app_home --opens 200

The real bot (`python -m bot --mode http`) runs against an embedded Valkey and the Slack
and OpenAI stand-ins. The workspace holds 100 custom personas, 50 fine-tune jobs, 20
datasets, 40 channels with their own persona and 30 days of usage over 40 channels, 100
people and 5 models. An admin (the biggest Home: jobs, datasets, the workspace's usage)
opens the Home tab `--opens` times, one after another. Printed per publish:
- Redis round trips, from the bot's /metrics (TURN_LEASE_SECONDS is long, so the
  recovery scan stays out of the count);
- bot time: from the signed event's POST to the `views.publish` call arriving at the
  stand-in, median and p95. It includes the bot's one `users.conversations` call to the
  local stand-in (Slack's own time would come on top). The target is 1 round trip and
  under 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import aiohttp

from bench import bot_env, free_port, slack_headers, wait_until_healthy
from core import keys, personas, schemas, usage
from core.finetune import store as finetune_store
from core.store import Store, close_store, connect, start_embedded_valkey
from tests.scenarios.harness import event_body
from tests.standins.openai_api import OpenAIStandIn
from tests.standins.slack_api import SlackStandIn

SECRET = "bench-secret"
ADMIN = "UADMIN"
PREFIX = "tw"


async def seed(store: Store, *, personas_n: int = 100, jobs_n: int = 50, days: int = 30) -> None:
    rng = random.Random(7)
    for i in range(personas_n):
        prompt = f"You are persona {i}. " + "Answer with care and cite sources. " * 20
        await personas.create(store, "T1", personas.make_custom(f"persona-{i:03d}", prompt))
    for i in range(40):
        await personas.set_channel(store, "T1", f"C{i:03d}", personas.Choice(f"persona-{i:03d}", by=ADMIN))
    for i in range(10):
        await schemas.save(
            store, "T1", f"schema-{i}", '{"type":"object","properties":{"a":{"type":"string"}}}'
        )
    for i in range(jobs_n):  # straight into the workspace's jobs, not the watch index: no polling
        job = finetune_store.JobRecord(
            f"ftjob-{i:04d}",
            "T1",
            "CADM",
            "1.0",
            f"dataset-{i % 20}",
            "gpt-4.1-mini",
            ADMIN,
            "succeeded",
            fine_tuned_model=f"ft:gpt-4.1-mini:acme::{i:04d}",
        )
        await store.redis.hset(keys.workspace(store.prefix, "T1").jobs, job.job_id, json.dumps(asdict(job)))
    for i in range(20):
        await finetune_store.save_dataset(
            store, "T1", finetune_store.Dataset(f"dataset-{i}", examples=500, audience=""), "{}\n", ""
        )
    now = time.time()
    for d in range(days):
        for t in range(60):  # 60 answers a day
            spend = usage.Spend(
                team="T1",
                channel=f"C{rng.randrange(40):03d}",
                persona=f"persona-{rng.randrange(100):03d}",
                user=f"U{rng.randrange(100):03d}",
                model=rng.choice(
                    ["gpt-4.1-mini", "gpt-4.1", "gpt-5-mini", "o4-mini", "ft:gpt-4.1-mini:acme::0001"]
                ),
                prompt=rng.randrange(500, 5000),
                completion=rng.randrange(100, 1000),
                cached=rng.randrange(0, 400),
                marker=f"seed-{d}-{t}",
            )
            await usage.record(store, spend, now=now - d * 86400)


async def main(opens: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="tw-home-bench-"))
    slack, openai = SlackStandIn(), OpenAIStandIn()
    await slack.start()
    await openai.start()
    slack.members = {f"C{i:03d}": ["UBOT", ADMIN] for i in range(40)}
    valkey = start_embedded_valkey(tmp)
    store = Store(redis=connect(valkey.connection_url), prefix=PREFIX)
    await seed(store)
    port = free_port()
    env = bot_env(
        slack_url=slack.url,
        openai_url=openai.url,
        secret=SECRET,
        REDIS_URL=valkey.connection_url,
        ADMIN_USER_IDS=ADMIN,
        PORT=str(port),
        TURN_LEASE_SECONDS="600",
    )
    proc = subprocess.Popen([sys.executable, "-m", "bot", "--mode", "http"], env=env)
    session = aiohttp.ClientSession()
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_until_healthy(session, url)
        trips, times = [], []
        for i in range(opens + 5):  # the first few warm up imports, scripts and connections
            event = {"type": "app_home_opened", "user": ADMIN, "channel": f"D{ADMIN}", "tab": "home"}
            body = json.dumps(event_body(event, event_id=f"EvHome{i}"))
            async with session.get(url + "/metrics") as r:
                before = (await r.json())["redis_round_trips"]
            published = len(slack.calls_to("views.publish"))
            started = time.monotonic()
            async with session.post(
                url + "/slack/events", data=body, headers=slack_headers(body, SECRET)
            ) as r:
                assert r.status == 200
            await slack.wait_for("views.publish", count=published + 1, timeout=10)
            done = slack.calls_to("views.publish")[-1].at
            await asyncio.sleep(0.05)  # let the publish's task finish before reading /metrics
            async with session.get(url + "/metrics") as r:
                after = (await r.json())["redis_round_trips"]
            if i >= 5:
                trips.append(after - before)
                times.append((done - started) * 1000)
        view = slack.home_views[ADMIN]
        times.sort()
        print(
            f"App Home with 100 personas, 50 jobs, 20 datasets, 30 days of usage ({opens} opens by an admin)"
        )
        print(f"  blocks in the view: {len(view['blocks'])} (Slack's limit: 100)")
        print(
            f"  Redis round trips per publish: min {min(trips)}, median {statistics.median(trips)}, max {max(trips)}"
        )
        print(
            f"  bot time per publish (event POST to views.publish): median {statistics.median(times):.1f} ms, "
            f"p95 {times[int(len(times) * 0.95) - 1]:.1f} ms"
        )
    finally:
        proc.terminate()
        proc.wait(30)
        await session.close()
        await close_store(store)
        valkey.stop()
        await slack.close()
        await openai.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--opens", type=int, default=100)
    asyncio.run(main(parser.parse_args().opens))
