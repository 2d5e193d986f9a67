"""The one place configuration is read: the environment, fed by `.env`.

Read once at start-up with `Settings.from_env()` and passed down; handlers never call
`os.getenv` themselves.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from dotenv import find_dotenv, load_dotenv


class ConfigError(Exception):
    """A setting is missing or malformed; the message says which and where to get it."""


def _bool(value: str | None, default: bool) -> bool:
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from exc


def _float(env: dict[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from exc


def _prices(value: str | None) -> dict[str, float]:
    """`FINETUNE_PRICES={"gpt-4.1-mini-2025-04-14": 5.0}`: USD per 1M training tokens."""
    if not value or not value.strip():
        return {}
    try:
        data = json.loads(value)
        return {str(k): float(v) for k, v in data.items()}
    except (ValueError, AttributeError, TypeError) as exc:
        raise ConfigError(
            'FINETUNE_PRICES must be a JSON object of model -> USD per 1M tokens, e.g. {"gpt-4.1-mini-2025-04-14": 5}'
        ) from exc


def _check_cluster(url: str, prefix: str) -> None:
    """A cluster is only ever an explicit server: the embedded Valkey stays single-node."""
    if "{" in prefix or "}" in prefix:
        raise ConfigError(
            "REDIS_KEY_PREFIX can't hold { or } on a Redis Cluster: braces in it would replace "
            "the hash tags that keep each conversation's keys on one node."
        )
    if not url:
        raise ConfigError(
            "REDIS_CLUSTER is set but REDIS_URL is empty: point REDIS_URL at one node of the "
            "cluster (redis://[:password@]host:port), or unset REDIS_CLUSTER to use the embedded Valkey."
        )
    database = urlsplit(url).path.strip("/")
    if database not in ("", "0"):
        raise ConfigError(f"REDIS_URL names database {database}, but a Redis Cluster only has database 0.")


# The bot scopes of manifest.yml, asked for at /slack/install unless SLACK_SCOPES says otherwise
DEFAULT_SCOPES = (
    "app_mentions:read",
    "assistant:write",
    "channels:history",
    "channels:read",
    "chat:write",
    "commands",
    "files:read",
    "files:write",
    "groups:history",
    "groups:read",
    "im:history",
    "im:write",
    "mpim:history",
    "mpim:read",
    "reactions:read",
    "users:read",
)


def _install_kind(value: str | None) -> str:
    kind = (value or "internal").strip().lower() or "internal"
    if kind not in ("internal", "marketplace", "distributed"):
        raise ConfigError(f"SLACK_INSTALL_KIND must be internal, marketplace or distributed, got {kind!r}")
    return kind


def _ids(value: str | None) -> frozenset[str]:
    return frozenset(part.strip() for part in (value or "").replace(" ", ",").split(",") if part.strip())


@dataclass(frozen=True)
class Settings:
    # Slack
    slack_bot_token: str = ""
    slack_signing_secret: str = ""
    slack_app_token: str = ""
    slack_api_url: str = ""
    # Distributed installs (OAuth, HTTP mode): with a client id and secret and no bot token,
    # each workspace installs the app at /slack/install and gets its own token (issue 11).
    slack_client_id: str = ""
    slack_client_secret: str = ""
    slack_scopes: tuple[str, ...] = ()
    slack_redirect_uri: str = ""
    # "internal" | "marketplace" | "distributed": how the app is distributed, which sets
    # Slack's limits on reading history (conversations.replies/history, see README)
    slack_install_kind: str = "internal"
    uninstall_grace_days: float = 30.0
    # Fernet key(s) that encrypt workspaces' own OpenAI keys in Redis (core/openai_keys.py)
    openai_key_encryption_key: str = ""
    # Streaming: "auto" tries Slack's native chat streaming, then falls back to
    # a placeholder edited with chat.update; "update" always uses the fallback.
    streaming_mode: str = "auto"
    native_streams_per_minute: int = 18
    # OpenAI
    openai_api_key: str = ""
    openai_base_url: str = ""
    openai_model: str = "gpt-4.1-mini"
    openai_timeout: float = 60.0
    openai_max_attempts: int = 4
    openai_webhook_secret: str = ""
    max_output_tokens: int = 2048
    max_history_tokens: int = 12000
    model_context_window: int = 0  # 0: from the model table
    temperature: float | None = None
    moderation_enabled: bool = False
    # Storage
    redis_url: str = ""
    # REDIS_CLUSTER=1: REDIS_URL names one node of a Redis/Valkey Cluster (the others are
    # discovered); keys then spread over its primaries by hash tag (see core/keys.py).
    redis_cluster: bool = False
    redis_key_prefix: str = "tw"
    redis_max_connections: int = 64  # per node in a cluster
    bot_data_dir: Path = Path(".data")
    conversation_ttl_days: int = 30
    # Runtime
    port: int = 3000
    log_level: str = "INFO"
    max_concurrent_turns: int = 1000
    # A process holding a thread's turns renews its lease; if it dies, another process
    # takes the turns over within about this long (core/turn_queue.py).
    turn_lease_seconds: float = 8.0
    # Personas and admin
    workspace_persona_prompt: str = ""
    admin_user_ids: frozenset[str] = field(default_factory=frozenset)
    admin_channel_ids: frozenset[str] = field(default_factory=frozenset)
    # Usage limits (core/usage.py), 0 for none; admins override them per workspace (/usage)
    monthly_budget_usd: float = 0.0
    user_turns_per_hour: int = 0
    # Fine-tuning
    finetune_poll_interval: float = 30.0
    finetune_base_model: str = "gpt-4.1-mini-2025-04-14"
    finetune_screening: bool = True  # moderation pre-screen + near duplicates by embeddings
    finetune_prices: dict[str, float] = field(default_factory=dict)  # USD per 1M training tokens

    @property
    def distributed(self) -> bool:
        """Many workspaces through OAuth, rather than one through SLACK_BOT_TOKEN."""
        return bool(self.slack_client_id and self.slack_client_secret and not self.slack_bot_token)

    @property
    def turn_lease_ms(self) -> int:
        return int(self.turn_lease_seconds * 1000)

    @property
    def conversation_ttl_seconds(self) -> int:
        return self.conversation_ttl_days * 86400

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, *, dotenv: bool = True) -> Settings:
        """Build settings from `env` (default: `os.environ` after loading `.env`).

        Example:
            >>> Settings.from_env({"OPENAI_MODEL": "gpt-4o-mini"}, dotenv=False).openai_model
            'gpt-4o-mini'
        """
        if env is None:
            if dotenv:
                load_dotenv(find_dotenv(usecwd=True), override=False)  # .env of the working directory
            env = dict(os.environ)
        g = env.get
        temperature = g("OPENAI_TEMPERATURE", "").strip()
        redis_url = g("REDIS_URL", "").strip()
        redis_key_prefix = g("REDIS_KEY_PREFIX", "").strip() or "tw"
        redis_cluster = _bool(g("REDIS_CLUSTER"), False)
        if redis_cluster:
            _check_cluster(redis_url, redis_key_prefix)
        return cls(
            slack_bot_token=g("SLACK_BOT_TOKEN", "").strip(),
            slack_signing_secret=g("SLACK_SIGNING_SECRET", "").strip(),
            slack_app_token=g("SLACK_APP_TOKEN", "").strip(),
            slack_api_url=g("SLACK_API_URL", "").strip(),
            slack_client_id=g("SLACK_CLIENT_ID", "").strip(),
            slack_client_secret=g("SLACK_CLIENT_SECRET", "").strip(),
            slack_scopes=tuple(sorted(_ids(g("SLACK_SCOPES")))) or DEFAULT_SCOPES,
            slack_redirect_uri=g("SLACK_REDIRECT_URI", "").strip(),
            slack_install_kind=_install_kind(g("SLACK_INSTALL_KIND")),
            uninstall_grace_days=max(0.0, _float(env, "UNINSTALL_GRACE_DAYS", 30.0)),
            openai_key_encryption_key=g("OPENAI_KEY_ENCRYPTION_KEY", "").strip(),
            streaming_mode=(g("STREAMING_MODE", "auto").strip() or "auto").lower(),
            native_streams_per_minute=_int(env, "NATIVE_STREAMS_PER_MINUTE", 18),
            openai_api_key=g("OPENAI_API_KEY", "").strip(),
            openai_base_url=g("OPENAI_BASE_URL", "").strip(),
            openai_model=g("OPENAI_MODEL", "").strip() or "gpt-4.1-mini",
            openai_timeout=_float(env, "OPENAI_TIMEOUT", 60.0),
            openai_max_attempts=max(1, _int(env, "OPENAI_MAX_ATTEMPTS", 4)),
            openai_webhook_secret=g("OPENAI_WEBHOOK_SECRET", "").strip(),
            max_output_tokens=_int(env, "MAX_OUTPUT_TOKENS", 2048),
            max_history_tokens=_int(env, "MAX_HISTORY_TOKENS", 12000),
            model_context_window=_int(env, "MODEL_CONTEXT_WINDOW", 0),
            temperature=float(temperature) if temperature else None,
            moderation_enabled=_bool(g("MODERATION_ENABLED"), False),
            redis_url=redis_url,
            redis_cluster=redis_cluster,
            redis_key_prefix=redis_key_prefix,
            redis_max_connections=_int(env, "REDIS_MAX_CONNECTIONS", 64),
            bot_data_dir=Path(g("BOT_DATA_DIR", "").strip() or ".data"),
            conversation_ttl_days=_int(env, "CONVERSATION_TTL_DAYS", 30),
            port=_int(env, "PORT", 3000),
            log_level=(g("LOG_LEVEL", "INFO").strip() or "INFO").upper(),
            max_concurrent_turns=_int(env, "MAX_CONCURRENT_TURNS", 1000),
            turn_lease_seconds=max(0.5, _float(env, "TURN_LEASE_SECONDS", 8.0)),
            workspace_persona_prompt=g("WORKSPACE_PERSONA_PROMPT", "").strip(),
            admin_user_ids=_ids(g("ADMIN_USER_IDS")),
            admin_channel_ids=_ids(g("ADMIN_CHANNEL_IDS")),
            monthly_budget_usd=max(0.0, _float(env, "MONTHLY_BUDGET_USD", 0.0)),
            user_turns_per_hour=max(0, _int(env, "USER_TURNS_PER_HOUR", 0)),
            finetune_poll_interval=_float(env, "FINETUNE_POLL_INTERVAL", 30.0),
            finetune_base_model=g("FINETUNE_BASE_MODEL", "").strip() or "gpt-4.1-mini-2025-04-14",
            finetune_screening=_bool(g("FINETUNE_SCREENING"), True),
            finetune_prices=_prices(g("FINETUNE_PRICES")),
        )

    def require_slack(self, mode: str) -> None:
        """Stop start-up early, naming the missing or placeholder value and where to get it."""
        where = "Create the app from manifest.yml at https://api.slack.com/apps, then copy it from "
        bot_token_source = where + "'OAuth & Permissions' -> 'Bot User OAuth Token' (starts with xoxb-)."
        app_token_source = (
            where
            + "'Basic Information' -> 'App-Level Tokens', with the connections:write scope (starts with xapp-)."
        )
        signing_secret_source = where + "'Basic Information' -> 'App Credentials' -> 'Signing Secret'."
        openai_key_source = (
            "Get one at https://platform.openai.com/api-keys, "
            "or set OPENAI_BASE_URL to a local OpenAI-compatible server."
        )
        if self.distributed:
            self._require_oauth(mode, signing_secret_source)
        else:
            self._require_token(mode, bot_token_source, app_token_source, signing_secret_source)
        if self.openai_api_key and not self.openai_base_url:
            # Local servers (llama.cpp, vLLM, LM Studio) take any key: `sk-xxx` is fine there.
            _require_real("OPENAI_API_KEY", self.openai_api_key, openai_key_source)
        elif not self.openai_base_url:
            raise ConfigError("OPENAI_API_KEY is not set. " + openai_key_source)
        if self.openai_webhook_secret:
            _require_real(
                "OPENAI_WEBHOOK_SECRET",
                self.openai_webhook_secret,
                "Copy the signing secret (whsec_...) shown when you create the webhook at "
                "https://platform.openai.com/settings/organization/webhooks, or leave it empty.",
            )

    def _require_token(
        self, mode: str, bot_token_source: str, app_token_source: str, signing_secret_source: str
    ) -> None:
        """One workspace: its bot token, and Socket Mode's app token or HTTP's secret."""
        if not self.slack_bot_token:
            raise ConfigError(
                "SLACK_BOT_TOKEN is not set. " + bot_token_source + " Or, to let many workspaces "
                "install the app, set SLACK_CLIENT_ID and SLACK_CLIENT_SECRET and run in HTTP mode."
            )
        _require_real("SLACK_BOT_TOKEN", self.slack_bot_token, bot_token_source, prefix="xoxb-")
        if self.slack_app_token:
            _require_real(
                "SLACK_APP_TOKEN",
                self.slack_app_token,
                app_token_source + " Or leave it empty to run in HTTP mode.",
                prefix="xapp-",
            )
        elif mode == "socket":
            raise ConfigError("SLACK_APP_TOKEN is not set (needed for Socket Mode). " + app_token_source)
        if self.slack_signing_secret:
            _require_real("SLACK_SIGNING_SECRET", self.slack_signing_secret, signing_secret_source)
        elif mode == "http":
            raise ConfigError(
                "SLACK_SIGNING_SECRET is not set (needed for HTTP mode). " + signing_secret_source
            )

    def _require_oauth(self, mode: str, signing_secret_source: str) -> None:
        """Many workspaces: the app's OAuth credentials, in HTTP mode."""
        where = "Copy it from your app's 'Basic Information' -> 'App Credentials'."
        _require_real("SLACK_CLIENT_ID", self.slack_client_id, where)
        _require_real("SLACK_CLIENT_SECRET", self.slack_client_secret, where)
        if mode != "http":
            raise ConfigError(
                "Installs in many workspaces (SLACK_CLIENT_ID and SLACK_CLIENT_SECRET without "
                "SLACK_BOT_TOKEN) need HTTP mode, where Slack sends installers back to "
                "/slack/oauth_redirect: run `./tw run --mode http`."
            )
        if not self.slack_signing_secret:
            raise ConfigError(
                "SLACK_SIGNING_SECRET is not set (needed for HTTP mode). " + signing_secret_source
            )
        _require_real("SLACK_SIGNING_SECRET", self.slack_signing_secret, signing_secret_source)


# What a copied example or a half-edited .env looks like. Real tokens and keys are
# random letters and digits: they never hold an ellipsis, angle brackets or these words,
# and a dash-separated part made only of x's (xoxb-xxxx-...) is a template, not a token.
_PLACEHOLDER_MARKS = ("...", "\u2026", "<", ">", "your-", "your_", "changeme", "change-me", "placeholder")
_BARE_PREFIXES = frozenset({"xoxb-", "xoxp-", "xapp-", "sk-", "sk-proj-", "whsec_"})


def is_placeholder(value: str) -> bool:
    """True for values like `xoxb-...`, `sk-<your key>`, `xapp-xxxx` or a bare `sk-`.

    Example:
        >>> is_placeholder("xoxb-..."), is_placeholder("xoxb-123-456-AbCxxx9")
        (True, False)
    """
    lowered = value.lower()
    if lowered in _BARE_PREFIXES or any(mark in lowered for mark in _PLACEHOLDER_MARKS):
        return True
    parts = [part for part in lowered.replace("_", "-").split("-") if part]
    return any(len(part) >= 3 and set(part) == {"x"} for part in parts)


def _require_real(name: str, value: str, source: str, *, prefix: str = "") -> None:
    """Refuse a placeholder or a token of the wrong kind without echoing the value."""
    if is_placeholder(value):
        raise ConfigError(f"{name} is still a placeholder from .env.example. {source}")
    if prefix and not value.startswith(prefix):
        head = value.split("-", 1)[0]
        seen = f"it starts with {head}-" if "-" in value and len(head) <= 4 else "it has no such prefix"
        raise ConfigError(f"{name} must start with {prefix} ({seen}). {source}")
