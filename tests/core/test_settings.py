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
    s = Settings.from_env({"OPENAI_API_KEY": "k", "SLACK_BOT_TOKEN": "xoxb-1"}, dotenv=False)
    with pytest.raises(ConfigError, match="SLACK_APP_TOKEN.*App-Level Tokens"):
        s.require_slack("socket")
    with pytest.raises(ConfigError, match="SLACK_SIGNING_SECRET"):
        s.require_slack("http")


def test_bad_numbers_are_reported():
    with pytest.raises(ConfigError, match="PORT must be a whole number"):
        Settings.from_env({"PORT": "eighty"}, dotenv=False)


REAL_LOOKING = {
    "SLACK_BOT_TOKEN": "xoxb-123-456-AbC",
    "SLACK_SIGNING_SECRET": "8f14e45fceea167a5a36dedd4bea2543",
    "OPENAI_API_KEY": "sk-proj-AbCdEf",
}


@pytest.mark.parametrize(
    "name, value, where",
    [
        ("SLACK_BOT_TOKEN", "xoxb-...", "Bot User OAuth Token"),
        ("SLACK_BOT_TOKEN", "xoxb-", "Bot User OAuth Token"),
        ("SLACK_BOT_TOKEN", "xoxb-xxxxxxxxxx-xxxxxxxx", "Bot User OAuth Token"),
        ("SLACK_APP_TOKEN", "xapp-...", "App-Level Tokens"),
        ("SLACK_APP_TOKEN", "xapp-\u2026", "App-Level Tokens"),
        ("SLACK_SIGNING_SECRET", "your-signing-secret", "Signing Secret"),
        ("SLACK_SIGNING_SECRET", "<signing secret>", "Signing Secret"),
        ("OPENAI_API_KEY", "sk-...", "platform.openai.com/api-keys"),
        ("OPENAI_API_KEY", "sk-", "platform.openai.com/api-keys"),
        ("OPENAI_API_KEY", "changeme", "platform.openai.com/api-keys"),
        ("OPENAI_WEBHOOK_SECRET", "whsec_placeholder", "webhooks"),
    ],
)
def test_placeholders_are_refused_naming_the_variable_and_where_to_get_it(name, value, where):
    """A value copied from an example is refused at start-up, not used against Slack or OpenAI."""
    s = Settings.from_env({**REAL_LOOKING, name: value}, dotenv=False)
    with pytest.raises(ConfigError, match=rf"^{name} is still a placeholder.*{where}") as caught:
        s.require_slack("http")
    if len(value) > 6:
        assert value not in str(caught.value)


def test_a_copied_placeholder_app_token_says_to_leave_it_empty_for_http_mode():
    s = Settings.from_env({**REAL_LOOKING, "SLACK_APP_TOKEN": "xapp-..."}, dotenv=False)
    with pytest.raises(ConfigError, match="SLACK_APP_TOKEN.*leave it empty to run in HTTP mode"):
        s.require_slack("socket")


def test_token_of_the_wrong_kind_is_refused_without_echoing_it():
    """A user token (xoxp-) pasted as the bot token, or a bot token as the app token, is named."""
    s = Settings.from_env({**REAL_LOOKING, "SLACK_BOT_TOKEN": "xoxp-1-2-secretpart"}, dotenv=False)
    with pytest.raises(
        ConfigError, match=r"SLACK_BOT_TOKEN must start with xoxb- \(it starts with xoxp-\)"
    ) as e:
        s.require_slack("http")
    assert "secretpart" not in str(e.value)
    s = Settings.from_env({**REAL_LOOKING, "SLACK_APP_TOKEN": "xoxb-123-456-AbC"}, dotenv=False)
    with pytest.raises(ConfigError, match="SLACK_APP_TOKEN must start with xapp-.*App-Level Tokens"):
        s.require_slack("socket")
    # what the tests and a local model server use is still fine
    Settings.from_env(
        {
            "SLACK_BOT_TOKEN": "xoxb-test",
            "SLACK_SIGNING_SECRET": "test-signing-secret",
            "OPENAI_API_KEY": "sk-test",
        },
        dotenv=False,
    ).require_slack("http")
    Settings.from_env(
        {**REAL_LOOKING, "OPENAI_API_KEY": "ollama", "OPENAI_BASE_URL": "http://localhost:11434/v1"},
        dotenv=False,
    ).require_slack("http")


def test_a_dummy_key_for_a_local_openai_server_is_accepted():
    settings = Settings.from_env(
        {
            "SLACK_BOT_TOKEN": "xoxb-1",
            "SLACK_APP_TOKEN": "xapp-1",
            "OPENAI_API_KEY": "sk-xxx",
            "OPENAI_BASE_URL": "http://localhost:8000/v1",
        },
        dotenv=False,
    )
    settings.require_slack("socket")


def test_many_workspaces_need_oauth_credentials_and_http_mode():
    env = {
        "SLACK_CLIENT_ID": "111.222",
        "SLACK_CLIENT_SECRET": "abcdef0123456789",
        "SLACK_SIGNING_SECRET": "0123456789abcdef",
        "OPENAI_API_KEY": "sk-real-looking-key-123",
    }
    settings = Settings.from_env(env, dotenv=False)
    assert settings.distributed and "chat:write" in settings.slack_scopes
    settings.require_slack("http")
    with pytest.raises(ConfigError, match="need HTTP mode"):
        settings.require_slack("socket")
    with pytest.raises(ConfigError, match="SLACK_CLIENT_SECRET"):
        Settings.from_env({**env, "SLACK_CLIENT_SECRET": "your-secret"}, dotenv=False).require_slack("http")
    with_token = Settings.from_env({**env, "SLACK_BOT_TOKEN": "xoxb-1-2-abc"}, dotenv=False)
    assert not with_token.distributed, "a bot token keeps single-workspace mode"
    with pytest.raises(ConfigError, match="SLACK_INSTALL_KIND"):
        Settings.from_env({**env, "SLACK_INSTALL_KIND": "public"}, dotenv=False)
