"""Fine-tuning state in Redis: named datasets, watched jobs, and pending confirmations.

A dataset's metadata and its JSONL are written by one script (same hash tag), so a
dataset is never half-stored. Jobs are indexed globally (job id -> team) so any bot
process can resume watching after a restart.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field

from core import keys
from core.store import Store
from core.visibility import UNKNOWN_AUDIENCE

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
    # Who may see the content: "" = anyone in the workspace, else one conversation's
    # members (see core/visibility.py). Records from before this field are UNKNOWN.
    audience: str = UNKNOWN_AUDIENCE


class DatasetTooLarge(ValueError):
    """Over what we keep in Redis; the message says the limit."""


class DatasetExists(Exception):
    """A dataset of that name exists; saving over it needs the admin's confirmation."""

    def __init__(self, existing: Dataset) -> None:
        super().__init__(existing.name)
        self.existing = existing


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


def _check_size(train: str, valid: str) -> None:
    if len(train.encode()) + len(valid.encode()) > MAX_DATASET_BYTES:
        raise DatasetTooLarge(f"The dataset is over {MAX_DATASET_BYTES // 1024 // 1024} MB.")


# Scripts, not MULTI/EXEC or WATCH (core/ uses none on a Redis Cluster, see
# core/store.py); every key of a workspace's datasets shares its `{team}` hash tag.
_SAVE = """
local current = redis.call('HGET', KEYS[3], ARGV[1])
if current and ARGV[2] ~= '1' then return current end
redis.call('SET', KEYS[1], ARGV[4])
redis.call('SET', KEYS[2], ARGV[5])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[3])
return false
"""


async def save_dataset(
    store: Store, team: str, ds: Dataset, train: str, valid: str = "", *, replace: bool = False
) -> None:
    """Store a dataset; an existing one of that name raises DatasetExists unless `replace`.

    The existence check and the write are one script, so two admins saving the same name
    at once can't silently overwrite each other.
    """
    _check_size(train, valid)
    script = store.redis.register_script(_SAVE)
    current = await script(
        keys=[
            keys.dataset(store.prefix, team, ds.name, "train"),
            keys.dataset(store.prefix, team, ds.name, "valid"),
            keys.workspace(store.prefix, team).datasets,
        ],
        args=[ds.name, "1" if replace else "0", json.dumps(asdict(ds)), train, valid],
    )
    if current is not None:
        raise DatasetExists(Dataset(**json.loads(current)))


def _staged(token: str) -> str:
    return f".staged-{token}"  # a leading dot is never a valid dataset name


async def stage_dataset(store: Store, team: str, ds: Dataset, train: str, valid: str) -> str:
    """Keep a dataset aside until an admin confirms it may replace `ds.name`; returns the token.

    The staged JSONL expires with the confirmation, so an unanswered question leaves nothing.
    """
    _check_size(train, valid)
    token = await put_pending(store, team, {"kind": "overwrite", "dataset": asdict(ds)})
    # Not atomic, and needn't be: both halves expire, and commit_staged wants both.
    async with store.redis.pipeline(transaction=False) as pipe:
        pipe.set(keys.dataset(store.prefix, team, _staged(token), "train"), train, ex=PENDING_TTL)
        pipe.set(keys.dataset(store.prefix, team, _staged(token), "valid"), valid, ex=PENDING_TTL)
        await pipe.execute()
    return token


_COMMIT = """
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
redis.call('RENAME', KEYS[1], KEYS[3])
redis.call('RENAME', KEYS[2], KEYS[4])
redis.call('PERSIST', KEYS[3])
redis.call('PERSIST', KEYS[4])
redis.call('HSET', KEYS[5], ARGV[1], ARGV[2])
return 1
"""


async def drop_staged(store: Store, team: str, token: str) -> None:
    """ "Keep the old one": the staged copy (up to hundreds of MB) goes at once."""
    await store.redis.delete(
        *(keys.dataset(store.prefix, team, _staged(token), p) for p in ("train", "valid"))
    )


async def commit_staged(store: Store, team: str, token: str, pending: dict) -> Dataset | None:
    """Move a staged dataset over the old one, all or nothing (a script: a MULTI would
    still write the index if a RENAME failed); None if the staged copy expired."""
    ds = Dataset(**pending["dataset"])
    staged = [keys.dataset(store.prefix, team, _staged(token), part) for part in ("train", "valid")]
    real = [keys.dataset(store.prefix, team, ds.name, part) for part in ("train", "valid")]
    script = store.redis.register_script(_COMMIT)
    index = keys.workspace(store.prefix, team).datasets
    done = await script(keys=[*staged, *real, index], args=[ds.name, json.dumps(asdict(ds))])
    return ds if done else None


# One script so the metadata (its audience above all) matches the JSONL read with it.
_LOAD = """
return {redis.call('HGET', KEYS[1], ARGV[1]), redis.call('GET', KEYS[2]), redis.call('GET', KEYS[3])}
"""


async def load_dataset(store: Store, team: str, name: str) -> tuple[Dataset, str, str] | None:
    script = store.redis.register_script(_LOAD)
    meta, train, valid = await script(
        keys=[
            keys.workspace(store.prefix, team).datasets,
            keys.dataset(store.prefix, team, name, "train"),
            keys.dataset(store.prefix, team, name, "valid"),
        ],
        args=[name],
    )
    if meta is None or train is None:
        return None
    return Dataset(**json.loads(meta)), train.decode(), (valid or b"").decode()


async def list_datasets(store: Store, team: str) -> list[Dataset]:
    return parse_datasets(await store.redis.hgetall(keys.workspace(store.prefix, team).datasets))


def parse_datasets(raw: dict) -> list[Dataset]:
    """Datasets from their index hash, newest first."""
    return sorted((Dataset(**json.loads(v)) for v in raw.values()), key=lambda d: -d.created_at)


async def save_job(store: Store, job: JobRecord) -> None:
    async with store.redis.pipeline(transaction=False) as pipe:
        pipe.hset(keys.workspace(store.prefix, job.team).jobs, job.job_id, json.dumps(asdict(job)))
        pipe.hset(keys.finetune_jobs(store.prefix), job.job_id, job.team)
        await pipe.execute()


async def load_job(store: Store, team: str, job_id: str) -> JobRecord | None:
    raw = await store.redis.hget(keys.workspace(store.prefix, team).jobs, job_id)
    return JobRecord(**json.loads(raw)) if raw else None


async def list_job_records(store: Store, team: str) -> list[JobRecord]:
    return parse_jobs(await store.redis.hgetall(keys.workspace(store.prefix, team).jobs))


def parse_jobs(raw: dict) -> list[JobRecord]:
    """Job records from their hash, newest first."""
    return sorted((JobRecord(**json.loads(v)) for v in raw.values()), key=lambda j: -j.created_at)


async def watched_jobs(store: Store) -> dict[str, str]:
    """Jobs still being watched, across workspaces: job id -> team."""
    raw = await store.redis.hgetall(keys.finetune_jobs(store.prefix))
    return {k.decode(): v.decode() for k, v in raw.items()}


async def stop_watching(store: Store, job_id: str) -> None:
    await store.redis.hdel(keys.finetune_jobs(store.prefix), job_id)


# One owner-checked lock for both the watching lease and the refresh lock: only the
# owner renews or releases it, and an owner that dies loses it when it expires.
_HOLD = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) and 1 or 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


async def _hold(store: Store, key: str, owner: str, ttl_ms: int) -> bool:
    """Take `key` for `owner`, or renew it if `owner` holds it already."""
    script = store.redis.register_script(_HOLD)
    return bool(await script(keys=[key], args=[owner, ttl_ms]))


async def _release(store: Store, key: str, owner: str) -> None:
    """Let go of `key`, unless it has expired and someone else holds it now."""
    await store.redis.register_script(_RELEASE)(keys=[key], args=[owner])


async def hold_lease(store: Store, job_id: str, owner: str, ttl_ms: int) -> bool:
    """Take or renew the lease on watching `job_id`; exactly one process holds it."""
    return await _hold(store, keys.finetune_lease(store.prefix, job_id), owner, ttl_ms)


@contextlib.asynccontextmanager
async def refresh_lock(store: Store, job_id: str, owner: str, ttl_ms: int) -> AsyncIterator[bool]:
    """Hold `job_id`'s refresh lock for the block if it is free; yields whether we got it.

    Each call takes it under its own token, so two refreshes in one process take turns
    too; it is released on the way out, and expires after `ttl_ms` if we die holding it.
    """
    key = keys.finetune_refresh_lock(store.prefix, job_id)
    token = f"{owner}:{secrets.token_hex(4)}"
    if not await _hold(store, key, token, ttl_ms):
        yield False
        return
    try:
        yield True
    finally:
        await _release(store, key, token)


async def put_pending(store: Store, team: str, action: dict) -> str:
    token = secrets.token_urlsafe(10)
    await store.redis.set(keys.pending(store.prefix, team, token), json.dumps(action), ex=PENDING_TTL)
    return token


async def take_pending(store: Store, team: str, token: str) -> dict | None:
    """Claim a pending action once (GETDEL): a double click can't start two jobs."""
    raw = await store.redis.getdel(keys.pending(store.prefix, team, token))
    return json.loads(raw) if raw else None
