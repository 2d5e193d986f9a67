"""Benchmarks that print figures (not timed tests); each runs the real bot process."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp


def free_port() -> int:
    """A port nothing listens on now, for a bot process under test."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait_until_healthy(session: aiohttp.ClientSession, url: str, timeout: float = 15.0) -> None:
    """Until the bot process under test answers /healthz (it starts in a second or two)."""
    for _ in range(int(timeout / 0.05)):
        try:
            async with session.get(url + "/healthz") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.05)
    raise RuntimeError("bot did not start")


def slack_headers(body: str, secret: str) -> dict[str, str]:
    """The headers Slack sends with `body`, signed with the app's signing secret."""
    from slack_sdk.signature import SignatureVerifier

    ts = str(int(time.time()))
    return {
        "Content-Type": "application/json",
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": SignatureVerifier(secret).generate_signature(timestamp=ts, body=body),
    }


def raw_post(body: str, headers: dict[str, str], path: str = "/slack/events") -> str:
    """One complete HTTP/1.1 POST, ready to write to a socket (Connection: close)."""
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return (
        f"POST {path} HTTP/1.1\r\nHost: bench\r\n{head}"
        f"Content-Length: {len(body.encode())}\r\nConnection: close\r\n\r\n{body}"
    )


@dataclass
class BurstResult:
    """What bench/burst.py saw: wall-clock time of its first write (time.time()), and per
    request its ack time in seconds and HTTP status (0: the connection failed)."""

    first_write: float
    acks: list[float]
    statuses: list[int]


async def run_burst(targets: list[tuple[int, str]], directory: Path) -> BurstResult:
    """Write every (port, raw request) at once from a separate process (bench/burst.py)."""
    path = directory / "burst-targets.json"
    path.write_text(json.dumps(targets))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.burst", "--targets", str(path), stdout=asyncio.subprocess.PIPE
    )
    try:
        out, _ = await proc.communicate()
    except BaseException:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    if proc.returncode != 0:
        raise RuntimeError(f"bench.burst exited with {proc.returncode}")
    result = json.loads(out)
    return BurstResult(result["first_write"], result["acks"], result["statuses"])


def bot_env(*, slack_url: str, openai_url: str, secret: str, **extra: str) -> dict[str, str]:
    """The environment a bench starts `python -m bot` with: this machine's, the stand-ins,
    and no Redis or Socket Mode settings of its own unless `extra` gives them."""
    env = {
        **os.environ,
        "SLACK_BOT_TOKEN": "xoxb-bench",
        "SLACK_SIGNING_SECRET": secret,
        "SLACK_API_URL": slack_url,
        "OPENAI_API_KEY": "sk-bench",
        "OPENAI_BASE_URL": openai_url,
        "OPENAI_MODEL": "gpt-4.1-mini",
        "LOG_LEVEL": "WARNING",
    }
    for name in ("SLACK_APP_TOKEN", "REDIS_URL", "REDIS_CLUSTER", "REDIS_KEY_PREFIX"):
        env.pop(name, None)
    return {**env, **extra}
