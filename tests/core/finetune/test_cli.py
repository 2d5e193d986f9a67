"""`python -m core.finetune validate`, run as dataset authors and CI run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).resolve().parents[3]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    return subprocess.run(
        [sys.executable, "-m", "core.finetune", *args],
        cwd=REPO,
        env=base | (env or {}),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_good_file_exits_zero_with_a_readable_report():
    result = run("validate", str(DATA / "good.jsonl"))
    assert result.returncode == 0, result.stderr
    assert "OK: 0 errors, 1 warning; 12 usable of 12 examples" in result.stdout
    assert "Epochs: 8 (recommended)" in result.stdout
    assert "Billed tokens: ~" in result.stdout and "Estimated cost: ~$" in result.stdout


def test_broken_file_exits_one_and_names_lines():
    result = run(
        "validate", str(DATA / "broken.jsonl"), "--model", "gpt-4.1-nano-2025-04-14", "--epochs", "2"
    )
    assert result.returncode == 1
    assert "line 1: invalid JSON at column" in result.stdout
    assert "line 9: message 4 (tool): tool message without 'tool_call_id'" in result.stdout
    assert "32,768 tokens per example" in result.stdout and "Epochs: 2 (recommended 3)" in result.stdout


def test_json_output_and_validation_file(tmp_path):
    valid = tmp_path / "valid.jsonl"
    valid.write_text((DATA / "good.jsonl").read_text().splitlines()[0] + "\n")
    result = run("validate", str(DATA / "good.jsonl"), "--validation", str(valid), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["ok"] is True and data["n_valid"] == 12 and data["validation_examples"] == 1
    assert data["overlap"] == [[1, 1]] and data["validation_file"] == str(valid)


def test_usage_errors_and_unreadable_files_exit_two(tmp_path):
    assert run().returncode == 2
    assert run("validate").returncode == 2
    assert run("validate", str(DATA / "good.jsonl"), "--epochs", "0").returncode == 2
    missing = run("validate", str(tmp_path / "nope.jsonl"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    binary = tmp_path / "bad.jsonl"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    assert run("validate", str(binary)).returncode == 2
    screen = run("validate", str(DATA / "good.jsonl"), "--screen")
    assert screen.returncode == 2 and "OPENAI_API_KEY" in screen.stderr


def test_an_empty_validation_file_is_an_error(tmp_path):
    """An empty --validation file is checked (and fails), not taken for "no validation file"."""
    empty = tmp_path / "valid.jsonl"
    empty.write_text("")
    result = run("validate", str(DATA / "good.jsonl"), "--validation", str(empty))
    assert result.returncode == 1, result.stdout


def test_screening_a_broken_file_still_exits_two_when_the_screen_cant_run(tmp_path):
    """Exit 2 means "a screen you asked for didn't run", whatever else is wrong with the file."""
    broken = tmp_path / "broken.jsonl"
    broken.write_text((DATA / "good.jsonl").read_text() + "not json\n")
    dead = {"OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "OPENAI_API_KEY": "k", "OPENAI_MAX_ATTEMPTS": "1"}
    result = run("validate", str(broken), "--screen", env=dead)
    assert result.returncode == 2 and "screening failed" in result.stderr
