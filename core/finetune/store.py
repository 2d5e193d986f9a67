"""Fine-tuning state in Redis: named datasets, watched jobs, and pending confirmations.

A dataset's metadata and its JSONL are written in one transaction (same hash tag), so a
dataset is never half-stored. Jobs are indexed globally (job id -> team) so any bot
process can resume watching after a restart.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import asdict, dataclass, field

from core import keys
from core.store import Store

PENDING_TTL = 3600
MAX_DATASET_BYTES = 200 * 1024 * 1024  # Redis strings hold 512 MB; OpenAI's file limit is 512 MB


@dataclass
class Dataset:
    name: str
    examples: int
    validation_examples: int = 0
    source: str = ""
    created_by: str = ""
    created_at: float = field(default_factory=time.time)
    persona: str = ""


@dataclass
class JobRecord:
    """What the bot keeps about a job it started: where its card is, what it showed last."""

    job_id: str
    team: str
    channel: str
    card_ts: str
    dataset: str
    model: str
    created_by: str
    status: str = "validating_files"
    fine_tuned_model: str = ""
    last_step: int = 0
    notified: bool = False  # end-of-job summary posted
    created_at: float = field(default_factory=time.time)


async def save_dataset(store: Store, team: str, ds: Dataset, train: str, valid: str = "") -> None:
    if len(train.encode()) + len(valid.encode()) > MAX_DATASET_BYTES:
        raise ValueError(f"The dataset is over {MAX_DATASET_BYTES // 1024 // 1024} MB.")
    k = keys.workspace(store.prefix, team)
    async with store.redis.pipeline(transaction=True) as pipe:
        pipe.set(keys.dataset(store.prefix, team, ds.name, "train"), train)
        pipe.set(keys.dataset(store.prefix, team, ds.name, "valid"), valid)
        pipe.hset(k["datasets"], ds.name, json.dumps(asdict(ds)))
        await pipe.execute()


async def load_dataset(store: Store, team: str, name: str) -> tuple[Dataset, str, str] | None:
    k = keys.workspace(store.prefix, team)
    async with store.redis.pipeline(transaction=True) as pipe:
        pipe.hget(k["datasets"], name)
        pipe.get(keys.dataset(store.prefix, team, name, "train"))
        pipe.get(keys.dataset(store.prefix, team, name, "valid"))
        meta, train, valid = await pipe.execute()
    if meta is None or train is None:
        return None
    return Dataset(**json.loads(meta)), train.decode(), (valid or b"").decode()


async def list_datasets(store: Store, team: str) -> list[Dataset]:
    raw = await store.redis.hgetall(keys.workspace(store.prefix, team)["datasets"])
    return sorted((Dataset(**json.loads(v)) for v in raw.values()), key=lambda d: -d.created_at)


async def save_job(store: Store, job: JobRecord) -> None:
    async with store.redis.pipeline(transaction=False) as pipe:
        pipe.hset(keys.workspace(store.prefix, job.team)["jobs"], job.job_id, json.dumps(asdict(job)))
        pipe.hset(keys.finetune_jobs(store.prefix), job.job_id, job.team)
        await pipe.execute()


async def load_job(store: Store, team: str, job_id: str) -> JobRecord | None:
    raw = await store.redis.hget(keys.workspace(store.prefix, team)["jobs"], job_id)
    return JobRecord(**json.loads(raw)) if raw else None


async def list_job_records(store: Store, team: str) -> list[JobRecord]:
    raw = await store.redis.hgetall(keys.workspace(store.prefix, team)["jobs"])
    return sorted((JobRecord(**json.loads(v)) for v in raw.values()), key=lambda j: -j.created_at)


async def watched_jobs(store: Store) -> dict[str, str]:
    """Jobs still being watched, across workspaces: job id -> team."""
    raw = await store.redis.hgetall(keys.finetune_jobs(store.prefix))
    return {k.decode(): v.decode() for k, v in raw.items()}


async def stop_watching(store: Store, job_id: str) -> None:
    await store.redis.hdel(keys.finetune_jobs(store.prefix), job_id)


_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) and 1 or 0
"""


async def hold_lease(store: Store, job_id: str, owner: str, ttl_ms: int) -> bool:
    """Take or renew the lease on watching `job_id`; exactly one process holds it."""
    script = store.redis.register_script(_RENEW)
    return bool(await script(keys=[keys.finetune_lease(store.prefix, job_id)], args=[owner, ttl_ms]))


async def put_pending(store: Store, team: str, action: dict) -> str:
    token = secrets.token_urlsafe(10)
    await store.redis.set(keys.pending(store.prefix, team, token), json.dumps(action), ex=PENDING_TTL)
    return token


async def take_pending(store: Store, team: str, token: str) -> dict | None:
    """Claim a pending action once (GETDEL): a double click can't start two jobs."""
    raw = await store.redis.getdel(keys.pending(store.prefix, team, token))
    return json.loads(raw) if raw else None
