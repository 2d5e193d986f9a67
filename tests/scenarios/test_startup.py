"""Start-up problems stop the bot with a message that says what to fix."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from bot.deps import create_deps
from core.settings import ConfigError, Settings


async def test_rejected_token_is_named(env, slack):
    slack.fail("auth.test", error="invalid_auth")
    with pytest.raises(ConfigError, match=r"Slack rejected SLACK_BOT_TOKEN \(invalid_auth\)"):
        await create_deps(Settings.from_env(env, dotenv=False))


REPO = Path(__file__).resolve().parents[2]


def _clean_env(tmp_path, **env: str) -> dict[str, str]:
    return {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PYTHONPATH": str(REPO), **env}


def _run_bot(tmp_path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """`python -m bot --mode http` in a clean environment (no .env), as on a new machine."""
    return subprocess.run(
        [sys.executable, "-m", "bot", *(args or ("--mode", "http"))],
        env=_clean_env(tmp_path, **env),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_missing_token_names_the_variable_and_where_to_get_it(tmp_path):
    out = _run_bot(tmp_path)
    assert out.returncode == 2
    assert "SLACK_BOT_TOKEN is not set" in out.stderr and "OAuth & Permissions" in out.stderr


def test_http_mode_with_slack_unreachable_says_so_without_a_traceback(tmp_path):
    out = _run_bot(
        tmp_path,
        SLACK_BOT_TOKEN="xoxb-x",
        SLACK_SIGNING_SECRET="s",
        OPENAI_API_KEY="k",
        SLACK_API_URL="http://127.0.0.1:9/api/",  # nothing listens on the discard port
    )
    assert out.returncode == 1
    assert "Couldn't reach Slack at http://127.0.0.1:9/api/" in out.stderr
    assert "Traceback" not in out.stderr


def _env_file(**values: str) -> str:
    """The repository's .env.example with `values` filled in, as a newcomer edits it."""
    text = (REPO / ".env.example").read_text()
    for name, value in values.items():
        text, count = re.subn(rf"^{name}=.*$", f"{name}={value}", text, flags=re.M)
        assert count == 1, name
    return text


def test_env_example_copied_as_is_says_what_to_fill_in(tmp_path):
    """`cp .env.example .env` and run: the bot names the first value to fill in."""
    (tmp_path / ".env").write_text(_env_file())
    out = _run_bot(tmp_path, "--mode", "socket")
    assert out.returncode == 2
    assert "SLACK_BOT_TOKEN is not set" in out.stderr and "OAuth & Permissions" in out.stderr


def test_placeholder_tokens_are_refused_at_start_up(tmp_path):
    """Tokens still reading xoxb-... / xapp-... stop start-up, instead of a Socket Mode login with them."""
    out = _run_bot(
        tmp_path,
        "--mode",
        "socket",
        SLACK_BOT_TOKEN="xoxb-...",
        SLACK_APP_TOKEN="xapp-...",
        OPENAI_API_KEY="sk-...",
    )
    assert out.returncode == 2
    assert "SLACK_BOT_TOKEN is still a placeholder" in out.stderr and "OAuth & Permissions" in out.stderr
    out = _run_bot(tmp_path, SLACK_BOT_TOKEN="xoxb-1", SLACK_APP_TOKEN="xapp-...", SLACK_SIGNING_SECRET="s")
    assert out.returncode == 2
    assert "SLACK_APP_TOKEN is still a placeholder" in out.stderr
    assert "leave it empty to run in HTTP mode" in out.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_newcomer_following_the_http_steps_gets_a_bot_in_http_mode(tmp_path, slack, openai_api):
    """Filling in only the HTTP-mode values of .env.example starts the bot in HTTP mode.

    The app token left as the example has it must not switch the bot to Socket Mode.
    """
    port = _free_port()
    (tmp_path / ".env").write_text(
        _env_file(SLACK_BOT_TOKEN="xoxb-1-2-abc", SLACK_SIGNING_SECRET="s3cret", OPENAI_API_KEY="sk-abc")
        + f"SLACK_API_URL={slack.url}\nOPENAI_BASE_URL={openai_api.url}\nPORT={port}\n"
        + f"BOT_DATA_DIR={tmp_path / 'data'}\n"
    )
    bot = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        env=_clean_env(tmp_path),
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        healthy = False
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline and bot.returncode is None and not healthy:
                try:
                    async with session.get(f"http://127.0.0.1:{port}/healthz") as r:
                        healthy = r.status == 200
                except aiohttp.ClientError:
                    await asyncio.sleep(0.2)
        assert healthy, "the bot did not answer on PORT in HTTP mode"
        assert not slack.calls_to("apps.connections.open")
    finally:
        if bot.returncode is None:
            bot.send_signal(signal.SIGTERM)
        output = (await asyncio.wait_for(bot.communicate(), 30))[0].decode()
    assert "Traceback" not in output, output
