"""The embedded Valkey holds every conversation: it must be guarded like a real server."""

from __future__ import annotations

import asyncio
import socket
import stat
import urllib.parse

import pytest
from redis.asyncio import Redis
from redis.exceptions import AuthenticationError, ResponseError

from core.store import PASSWORD_FILE, Store, connect, ping, start_embedded_valkey


@pytest.fixture
def valkey(tmp_path):
    servers = []

    def start(**kwargs):
        server = start_embedded_valkey(tmp_path / "data", **kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        if server.is_running():
            server.stop()


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_clients_without_the_password_are_refused(valkey):
    """Another local user (or a browser doing DNS rebinding) reaching the port gets NOAUTH.

    The port is on 127.0.0.1 only, so other machines can't even try.
    """
    server = valkey()
    assert "bind 127.0.0.1\n" in (server.data_dir / "valkey.conf").read_text()
    with socket.create_connection(("127.0.0.1", server.port), timeout=2) as sock:
        sock.sendall(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n")
        assert sock.recv(64).startswith(b"-NOAUTH")
    stranger = Redis(host="127.0.0.1", port=server.port)
    with pytest.raises((AuthenticationError, ResponseError)):
        await stranger.get("k")
    await stranger.aclose()
    guessed = Redis(host="127.0.0.1", port=server.port, password="password")
    with pytest.raises((AuthenticationError, ResponseError)):
        await guessed.get("k")
    await guessed.aclose()
    bot = connect(server.connection_url)  # what the bot and the tests use
    await bot.set("k", "v")
    assert await bot.get("k") == b"v"
    await bot.aclose()


async def test_data_files_and_password_are_readable_only_by_the_bots_user(valkey, tmp_path):
    """Another account on the machine can't read conversations or the password from disk.

    Files left world-readable by an earlier version are tightened at start-up too.
    """
    old = tmp_path / "data" / "valkey"
    old.mkdir(parents=True)
    old.chmod(0o755)
    (old / "valkey.log").write_text("from an earlier run\n")
    (old / "valkey.log").chmod(0o644)

    server = valkey()
    bot = connect(server.connection_url)
    await bot.set("conversation", "secret plans")
    await bot.bgrewriteaof()  # Valkey writes new AOF files of its own
    await asyncio.sleep(1.5)
    await bot.aclose()

    directory = server.data_dir
    assert _mode(directory) == 0o700
    files = [p for p in directory.rglob("*") if p.is_file()]
    dirs = [p for p in directory.rglob("*") if p.is_dir()]
    assert {p.name for p in files} >= {PASSWORD_FILE, "valkey.conf", "valkey.log"}
    assert any(p.suffix == ".aof" for p in files)
    assert {str(p): oct(_mode(p)) for p in files} == {str(p): "0o600" for p in files}
    assert {str(p): oct(_mode(p)) for p in dirs} == {str(p): "0o700" for p in dirs}


async def test_restart_reuses_the_saved_password_and_data(valkey):
    """After a restart the bot reconnects to the same conversations, with the password from disk."""
    first = valkey()
    port = first.port
    password = (first.data_dir / PASSWORD_FILE).read_text()
    assert urllib.parse.urlsplit(first.connection_url).password == password
    client = connect(first.connection_url)
    await client.set("conversation", "kept")
    await client.aclose()
    first.stop()

    second = valkey(port=port)
    assert urllib.parse.urlsplit(second.connection_url).password == password
    client = connect(second.connection_url)
    assert await client.get("conversation") == b"kept"
    await client.aclose()


async def test_ping_says_whether_redis_answers(store):
    assert await ping(store) is True
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    down = Store(redis=connect(f"redis://127.0.0.1:{port}", timeout=0.5), prefix=store.prefix)
    try:
        assert await ping(down) is False
    finally:
        await down.redis.aclose()
