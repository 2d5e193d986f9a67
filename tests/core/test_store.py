"""The Redis client: the embedded Valkey is guarded like a real server, and every backend
(a Redis Cluster too) counts round trips, queues for connections and reconnects."""

from __future__ import annotations

import ast
import asyncio
import socket
import stat
import urllib.parse
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import AuthenticationError, RedisClusterException, ResponseError

from core import audit, history, keys
from core.settings import ConfigError, Settings
from core.store import (
    PASSWORD_FILE,
    Cluster,
    RoundTrips,
    Store,
    connect,
    create_store,
    ping,
    start_embedded_valkey,
)
from tests.conftest import _delete_prefix


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


# -- on every backend, the cluster included --------------------------------------------


async def test_a_script_or_a_pipeline_on_one_slot_is_one_round_trip(store):
    """Scripts run where their hash tag's slot lives, so a cluster costs what one server does
    (a script's first call on a server also loads it: not measured here)."""
    conv = "T1:C1:1.0"
    k = keys.conversation(store.prefix, conv)
    msg = {"role": "user", "content": "hi", "tokens": 2}
    steps = {
        "open": lambda n: history.open_turn(
            store, conv, msg, budget=100, ttl=60, event_key=f"e{n}", message_key=f"m{n}"
        ),
        "close": lambda n: history.close_turn(store, conv, {**msg, "role": "assistant"}, ttl=60),
        "audit": lambda n: audit.record(store, "T1", user="U1", action="/persona", allowed=True),
    }
    counts = {}
    for name, step in steps.items():
        await step(0)  # loads the script on the server, if it isn't there yet
        before = RoundTrips.count
        await step(1)
        counts[name] = RoundTrips.count - before
    before = RoundTrips.count
    async with store.redis.pipeline(transaction=False) as pipe:
        pipe.llen(k.msgs)
        pipe.hget(k.meta, "messages")
        assert await pipe.execute() == [4, b"4"]
    counts["pipeline"] = RoundTrips.count - before
    assert counts == {"open": 1, "close": 1, "audit": 1, "pipeline": 1}


async def test_a_busy_pool_queues_instead_of_failing(store):
    """Far more simultaneous requests than connections: all are served, none errors, and
    no server (no node of a cluster) gets more connections than the pool allows."""
    name = f"pool-{store.prefix}"
    cluster = isinstance(store.redis, Cluster)
    client = connect(store.url, cluster=cluster, max_connections=3, client_name=name)
    try:
        tags = [f"{store.prefix}:c:{{T1:C{i}:1.0}}:n" for i in range(30)]  # spread over slots
        await asyncio.gather(*(client.incr(tags[i % 30]) for i in range(600)))
        assert sum([int(await client.get(t)) for t in tags]) == 600
        if not cluster:
            listing = await store.redis.client_list()
            assert 1 <= len([c for c in listing if c["name"] == name]) <= 3
            return
        await store.redis.initialize()
        for node in store.redis.get_primaries():
            listing = await store.redis.client_list(target_nodes=node)
            # the node the client was pointed at also keeps the connection that read the slots
            assert 1 <= len([c for c in listing if c["name"] == name]) <= 3 + 1
    finally:
        await client.aclose()


# -- cluster only ----------------------------------------------------------------------


@pytest.fixture
async def cluster(redis_cluster_url, key_prefix):
    client = connect(redis_cluster_url, cluster=True)
    yield Store(redis=client, prefix=key_prefix, url=redis_cluster_url)
    await _delete_prefix(client, key_prefix)
    await client.aclose()


@pytest.mark.cluster
async def test_cluster_keys_spread_over_the_primaries_and_cleanup_finds_them_all(cluster):
    for i in range(40):
        await cluster.redis.set(f"{cluster.prefix}:w:{{T{i}}}:settings", i)
    await cluster.redis.initialize()
    pattern = f"{cluster.prefix}:*"
    held = [
        len([k async for k in cluster.redis.scan_iter(match=pattern, target_nodes=node)])
        for node in cluster.redis.get_primaries()
    ]
    assert sum(held) == 40 and len([n for n in held if n]) >= min(3, len(held))
    await _delete_prefix(cluster.redis, cluster.prefix)
    assert [k async for k in cluster.redis.scan_iter(match=f"{cluster.prefix}:*")] == []


@pytest.mark.cluster
async def test_cluster_clients_reconnect_after_the_server_drops_them(cluster):
    """What a restarted node looks like to pooled connections: closed by the server."""
    name = f"drop-{cluster.prefix}"
    client = connect(cluster.url, cluster=True, client_name=name)
    try:
        tags = [f"{cluster.prefix}:w:{{T{i}}}:audit" for i in range(12)]
        await asyncio.gather(*(client.lpush(t, "x") for t in tags))
        await cluster.redis.initialize()
        killed = 0
        for node in cluster.redis.get_primaries():
            for conn in await cluster.redis.client_list(target_nodes=node):
                if conn["name"] == name:
                    await cluster.redis.client_kill_filter(_id=conn["id"], target_nodes=node)
                    killed += 1
        assert killed >= 3
        assert await asyncio.gather(*(client.llen(t) for t in tags)) == [1] * 12
    finally:
        await client.aclose()


@pytest.mark.cluster
async def test_a_cluster_client_never_writes_twice_while_it_learns_the_slots(cluster):
    """A burst on a fresh client, or on one whose slot map went stale (a failover, a
    resharding), is redirected; redis-py's defaults there closed the connections of
    commands in flight, and their retries pushed some items twice."""
    fresh = connect(cluster.url, cluster=True)
    stale = connect(cluster.url, cluster=True)
    try:
        tags = [f"{cluster.prefix}:w:{{T{i}}}:audit" for i in range(40)]
        assert await asyncio.gather(*(fresh.lpush(t, "x") for t in tags)) == [1] * 40
        await stale.initialize()
        first = stale.get_primaries()[0]
        for slot in list(stale.nodes_manager.slots_cache):  # every slot "moved" but one node's
            stale.nodes_manager.slots_cache[slot] = [first]
        assert await asyncio.gather(*(stale.lpush(t, "y") for t in tags)) == [2] * 40
    finally:
        await fresh.aclose()
        await stale.aclose()


@pytest.mark.cluster
async def test_a_full_cluster_pool_survives_topology_refreshes(cluster):
    """Each refresh recycles the pooled connections; the ones being closed still count
    against their node's pool for a moment, and must not fail requests waiting for it."""
    client = connect(cluster.url, cluster=True, max_connections=2)
    try:
        await client.initialize()

        async def refresh():
            for _ in range(40):
                await client.nodes_manager.initialize()  # what a failover or a MOVED burst does
                await asyncio.sleep(0.002)

        tags = [f"{cluster.prefix}:w:{{T{i}}}:n" for i in range(50)]
        await asyncio.gather(refresh(), *(client.incr(tags[i % 50]) for i in range(4000)))
        assert sum([int(await client.get(t)) for t in tags]) == 4000
    finally:
        await client.aclose()


@pytest.mark.cluster
async def test_cluster_refuses_multi_exec(cluster):
    """redis-py's cluster MULTI/EXEC runs each command on a throwaway thread and event
    loop; core/ writes atomically with scripts under one hash tag instead."""
    with pytest.raises(RedisClusterException, match="Lua script"):
        cluster.redis.pipeline(transaction=True)


def test_core_uses_no_multi_exec():
    """So the same code runs on one server and on a cluster (see core/store.py).

    `pipeline()` without `transaction=False` is MULTI/EXEC on a single server.
    """
    core = Path(__file__).resolve().parents[2] / "core"
    offenders = []
    for path in sorted(core.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            plain = any(
                k.arg == "transaction" and isinstance(k.value, ast.Constant) and k.value.value is False
                for k in node.keywords
            )
            if node.func.attr in ("watch", "multi", "transaction") or (
                node.func.attr == "pipeline" and not plain
            ):
                offenders.append(f"{path.relative_to(core.parent)}:{node.lineno}: {ast.unparse(node)}")
    assert offenders == []


def test_cluster_connections_are_counted_over_tls_too():
    plain = connect("redis://127.0.0.1:7000", cluster=True)
    tls = connect("rediss://127.0.0.1:7000", cluster=True)
    assert plain.connection_kwargs["connection_class"].__name__ == "_CountedConnection"
    assert tls.connection_kwargs["connection_class"].__name__ == "_CountedSSLConnection"
    assert [n.connection_class for n in tls.startup_nodes] == [tls.connection_kwargs["connection_class"]]


def test_the_cluster_setting_needs_an_explicit_url(tmp_path):
    settings = Settings.from_env({"REDIS_CLUSTER": "1", "REDIS_URL": "redis://h:7000"}, dotenv=False)
    assert settings.redis_cluster and settings.redis_url == "redis://h:7000"
    assert not Settings.from_env({"REDIS_URL": "redis://h:7000"}, dotenv=False).redis_cluster
    with pytest.raises(ConfigError, match="REDIS_URL"):
        Settings.from_env({"REDIS_CLUSTER": "1"}, dotenv=False)
    with pytest.raises(ConfigError, match="database 3"):
        Settings.from_env({"REDIS_CLUSTER": "yes", "REDIS_URL": "redis://h:7000/3"}, dotenv=False)
    with pytest.raises(ConfigError, match="hash tags"):
        Settings.from_env(
            {"REDIS_CLUSTER": "1", "REDIS_URL": "redis://h:7000", "REDIS_KEY_PREFIX": "tw{1}"}, dotenv=False
        )
    with pytest.raises(ConfigError, match="single node"):  # never a cluster of the embedded Valkey
        asyncio.run(create_store(Settings(redis_cluster=True, bot_data_dir=tmp_path / "data")))
    assert not (tmp_path / "data").exists()
