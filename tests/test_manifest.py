"""The manifest offers what the code handles, and asks for no scope nothing uses."""

from __future__ import annotations

import re
from pathlib import Path

from bot.listeners.commands.ask_json import ASK_JSON
from bot.listeners.commands.finetune import FINETUNE
from bot.listeners.commands.persona import PERSONA
from bot.listeners.commands.usage import USAGE
from bot.listeners.shortcuts.ask import ASK_ABOUT_MESSAGE, ASK_ANYWHERE
from bot.listeners.shortcuts.extract import EXTRACT_JSON
from bot.listeners.shortcuts.summarize import SUMMARIZE_THREAD

MANIFEST = (Path(__file__).parent.parent / "manifest.yml").read_text()
# the manifest without its comment lines (they mention fields it doesn't set)
SETTINGS = "\n".join(line for line in MANIFEST.splitlines() if not line.lstrip().startswith("#"))


def test_every_command_and_shortcut_we_handle_is_in_the_manifest():
    for registry in (PERSONA, ASK_JSON, FINETUNE, USAGE):
        assert f"- command: {registry.command}\n" in MANIFEST
    for callback_id in (ASK_ABOUT_MESSAGE, ASK_ANYWHERE, EXTRACT_JSON, SUMMARIZE_THREAD):
        assert f"callback_id: {callback_id}\n" in MANIFEST
    assert "home_tab_enabled: true" in MANIFEST and "- app_home_opened" in MANIFEST
    assert "agent_view:" in SETTINGS and "assistant_view:" not in SETTINGS
    assert "interactivity:\n    is_enabled: true" in SETTINGS  # App Home's buttons need it


def test_unused_scopes_are_gone_and_the_kept_ones_say_why():
    scopes = re.findall(r"^      - ([a-z_.]+:[a-z_.]+)( #.*)?$", MANIFEST, re.M)
    names = {name for name, _ in scopes}
    assert "im:read" not in names
    for needed in ("channels:read", "groups:read", "im:write", "mpim:read"):
        [(_, why)] = [s for s in scopes if s[0] == needed]
        assert why.strip(" #"), f"{needed} says why it is needed"
