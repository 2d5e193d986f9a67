"""Start-up problems stop the bot with a message that says what to fix."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bot.deps import create_deps
from core.settings import ConfigError, Settings


async def test_rejected_token_is_named(env, slack):
    slack.fail("auth.test", error="invalid_auth")
    with pytest.raises(ConfigError, match=r"Slack rejected SLACK_BOT_TOKEN \(invalid_auth\)"):
        await create_deps(Settings.from_env(env, dotenv=False))


def _run_bot(tmp_path, **env: str) -> subprocess.CompletedProcess:
    """`python -m bot --mode http` in a clean environment (no .env), as on a new machine."""
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    clean = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PYTHONPATH": repo, **env}
    return subprocess.run(
        [sys.executable, "-m", "bot", "--mode", "http"],
        env=clean,
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
