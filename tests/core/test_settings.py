from __future__ import annotations

import pytest

from core.settings import ConfigError, Settings


def test_defaults_and_parsing():
    s = Settings.from_env({"ADMIN_USER_IDS": "U1, U2", "CONVERSATION_TTL_DAYS": "7"}, dotenv=False)
    assert s.admin_user_ids == {"U1", "U2"}
    assert s.conversation_ttl_seconds == 7 * 86400
    assert s.openai_model == "gpt-4.1-mini" and s.port == 3000 and s.moderation_enabled is False


def test_missing_tokens_name_the_variable_and_where_to_get_it():
    s = Settings.from_env({"OPENAI_API_KEY": "k"}, dotenv=False)
    with pytest.raises(ConfigError, match="SLACK_BOT_TOKEN.*OAuth & Permissions"):
        s.require_slack("http")
    s = Settings.from_env({"OPENAI_API_KEY": "k", "SLACK_BOT_TOKEN": "xoxb"}, dotenv=False)
    with pytest.raises(ConfigError, match="SLACK_APP_TOKEN.*App-Level Tokens"):
        s.require_slack("socket")
    with pytest.raises(ConfigError, match="SLACK_SIGNING_SECRET"):
        s.require_slack("http")


def test_bad_numbers_are_reported():
    with pytest.raises(ConfigError, match="PORT must be a whole number"):
        Settings.from_env({"PORT": "eighty"}, dotenv=False)
