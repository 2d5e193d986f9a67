"""What App Home shows, read in one round trip.

Every key App Home needs is a workspace key under the `{team}` hash tag (core/keys.py),
so one pipeline reads them all from one node, whatever the number of personas, schemas,
jobs or days: the personas, channel and workspace choices, schemas, datasets, jobs, this
month's counters and the last 30 days of usage.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from core import keys, personas, schemas, usage
from core.finetune import store as finetune_store
from core.store import Store

DAYS = 30


@dataclass
class Home:
    custom_personas: list[personas.Persona] = field(default_factory=list)
    workspace_choice: personas.Choice | None = None
    channel_choices: dict[str, personas.Choice] = field(default_factory=dict)
    schemas: list[schemas.NamedSchema] = field(default_factory=list)
    datasets: list[finetune_store.Dataset] = field(default_factory=list)
    jobs: list[finetune_store.JobRecord] = field(default_factory=list)
    workspace_usage: usage.Report = field(default_factory=usage.Report)
    month: usage.Totals = field(default_factory=usage.Totals)
    my_month: usage.Totals = field(default_factory=usage.Totals)
    limits: usage.Limits = field(default_factory=usage.Limits)


async def load(
    store: Store,
    team: str,
    user: str,
    *,
    admin: bool,
    defaults: usage.Limits,
    now: float | None = None,
    days: int = DAYS,
) -> Home:
    """Everything App Home shows `user`, in one round trip; the workspace's usage (by
    channel and persona) only for an admin."""
    now = time.time() if now is None else now
    ws = keys.workspace(store.prefix, team)
    pipe = store.redis.pipeline(transaction=False)
    for key in (ws.personas, ws.channel_personas, ws.settings, ws.schemas, ws.datasets, ws.jobs):
        pipe.hgetall(key)
    usage.month_queue(pipe, store, team, user=user, now=now)
    everyone = usage.ReportQuery.last(team, days=days, now=now, dims=("channel", "persona"))
    if admin:
        usage.month_queue(pipe, store, team, now=now)
        everyone.queue(pipe, store)
    custom, channels, settings, saved, datasets, jobs, my_month, *rest = await pipe.execute()
    choices = {
        k.decode(): choice
        for k, v in channels.items()
        if (choice := personas.Choice.from_json(v, "channel")) is not None
    }
    data = Home(
        custom_personas=personas.parse_custom(custom),
        workspace_choice=personas.Choice.from_json(settings.get(b"persona"), "workspace"),
        channel_choices=choices,
        schemas=schemas.parse_saved(saved),
        datasets=finetune_store.parse_datasets(datasets) if admin else [],
        jobs=finetune_store.parse_jobs(jobs) if admin else [],
        my_month=usage.month_parse(my_month, user=user),
        limits=usage.limits_from(settings, defaults),
    )
    if admin:
        data.month = usage.month_parse(rest[0])
        data.workspace_usage = everyone.parse(rest[1:])
    return data
