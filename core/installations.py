"""Installations of the app in many workspaces, and OAuth states, kept in Redis.

slack-sdk ships installation stores for files, SQLAlchemy, SQLite and S3, none for
Redis, which is already our database. These two implement the SDK's async interfaces
(`AsyncInstallationStore`, `AsyncOAuthStateStore`) with the behaviour of its built-in
stores: the latest bot and installer per workspace (or per Enterprise Grid org for an
org-wide install), the latest installer per user, historical rows when enabled, and a
user's installation carrying the workspace's latest bot token.

Every key of one installation shares the hash tag `{E-T}` (enterprise, team; "none" when
absent, and team "none" for an org-wide install), so a save is one script on one node.
Only the SDK's installation types are imported here: core/ knows nothing else of Slack.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator
from logging import Logger
from typing import Any

from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.oauth.installation_store.models.bot import Bot
from slack_sdk.oauth.installation_store.models.installation import Installation
from slack_sdk.oauth.state_store.async_state_store import AsyncOAuthStateStore

from core import keys
from core.store import Store

log = logging.getLogger(__name__)

NONE = "none"


def _ids(enterprise_id: str | None, team_id: str | None, is_enterprise_install: bool | None = False) -> str:
    return f"{enterprise_id or NONE}-{NONE if is_enterprise_install else (team_id or NONE)}"


def _json(entity: Bot | Installation) -> str:
    return json.dumps(entity.__dict__, default=str)


_SAVE = """
-- KEYS: bot, bots (history), installer, installer of the user, installers (history),
--       users (who installed)
-- ARGV: bot json ('' when there is no bot token), installation json, user, version, historical
if ARGV[1] ~= '' then
  redis.call('SET', KEYS[1], ARGV[1])
  if ARGV[5] == '1' then redis.call('HSET', KEYS[2], ARGV[4], ARGV[1]) end
end
if ARGV[2] ~= '' then
  redis.call('SET', KEYS[3], ARGV[2])
  redis.call('SET', KEYS[4], ARGV[2])
  redis.call('SADD', KEYS[6], ARGV[3])
  if ARGV[5] == '1' then redis.call('HSET', KEYS[5], ARGV[4] .. '|' .. ARGV[3], ARGV[2]) end
end
return 1
"""

_DELETE_INSTALLERS = """
-- KEYS: installer, installers (history), users; ARGV: the key of one user's latest row
-- without the user id, and the user to delete ('' for all)
local prefix, user = ARGV[1], ARGV[2]
local users = user ~= '' and {user} or redis.call('SMEMBERS', KEYS[3])
for _, u in ipairs(users) do
  redis.call('DEL', prefix .. u)
  redis.call('SREM', KEYS[3], u)
end
local rows = redis.call('HKEYS', KEYS[2])
for _, field in ipairs(rows) do
  if user == '' or string.sub(field, -(#user + 1)) == '|' .. user then redis.call('HDEL', KEYS[2], field) end
end
if user == '' then redis.call('DEL', KEYS[1]) end
return 1
"""


_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisInstallationStore(AsyncInstallationStore):
    """The SDK's installation store interface on Redis (see the module docstring)."""

    def __init__(self, store: Store, *, historical_data_enabled: bool = True, client_id: str = "") -> None:
        self.store = store
        self.historical_data_enabled = historical_data_enabled
        self.client_id = client_id
        self._logger = log

    @property
    def logger(self) -> Logger:
        return self._logger

    def _keys(
        self, enterprise_id: str | None, team_id: str | None, is_enterprise_install: bool | None = False
    ):
        return keys.installation(
            self.store.prefix, self.client_id, _ids(enterprise_id, team_id, is_enterprise_install)
        )

    async def async_save(self, installation: Installation) -> None:
        k = self._keys(installation.enterprise_id, installation.team_id, installation.is_enterprise_install)
        bot = installation.to_bot() if installation.bot_token else None
        user = installation.user_id or NONE
        await self.store.redis.register_script(_SAVE)(
            keys=[k.bot, k.bots, k.installer, k.installer_of(user), k.installers, k.users],
            args=[
                _json(bot) if bot else "",
                _json(installation),
                user,
                repr(installation.installed_at),
                "1" if self.historical_data_enabled else "0",
            ],
        )

    async def async_save_bot(self, bot: Bot) -> None:
        if not bot.bot_token:
            self.logger.debug("Skipped saving a bot without a bot token")
            return
        k = self._keys(bot.enterprise_id, bot.team_id, bot.is_enterprise_install)
        await self.store.redis.register_script(_SAVE)(
            keys=[k.bot, k.bots, k.installer, k.installer_of(NONE), k.installers, k.users],
            args=[_json(bot), "", NONE, repr(bot.installed_at), "1" if self.historical_data_enabled else "0"],
        )

    async def async_find_bot(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        is_enterprise_install: bool | None = False,
    ) -> Bot | None:
        raw = await self.store.redis.get(self._keys(enterprise_id, team_id, is_enterprise_install).bot)
        return Bot(**json.loads(raw)) if raw else None

    async def async_find_installation(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None = None,
        is_enterprise_install: bool | None = False,
    ) -> Installation | None:
        """The workspace's latest installation, or `user_id`'s; either way with the
        workspace's latest bot token (a user may have installed before a reinstall
        changed it), read in the same round trip."""
        k = self._keys(enterprise_id, team_id, is_enterprise_install)
        row, bot_raw = await self.store.redis.mget(
            k.installer_of(user_id) if user_id is not None else k.installer, k.bot
        )
        if not row:
            return None
        installation = Installation(**json.loads(row))
        if bot_raw and (user_id is not None or installation.bot_token is None):
            bot = Bot(**json.loads(bot_raw))
            if bot.bot_token != installation.bot_token:
                installation.bot_id = bot.bot_id
                installation.bot_user_id = bot.bot_user_id
                installation.bot_token = bot.bot_token
                installation.bot_scopes = bot.bot_scopes
                installation.bot_refresh_token = bot.bot_refresh_token
                installation.bot_token_expires_at = bot.bot_token_expires_at
        return installation

    async def async_delete_bot(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        k = self._keys(enterprise_id, team_id)
        await self.store.redis.delete(k.bot, k.bots)

    async def async_delete_installation(
        self, *, enterprise_id: str | None, team_id: str | None, user_id: str | None = None
    ) -> None:
        k = self._keys(enterprise_id, team_id)
        await self.store.redis.register_script(_DELETE_INSTALLERS)(
            keys=[k.installer, k.installers, k.users], args=[k.installer_of(""), user_id or ""]
        )

    async def async_delete_all(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        await self.async_delete_bot(enterprise_id=enterprise_id, team_id=team_id)
        await self.async_delete_installation(enterprise_id=enterprise_id, team_id=team_id)

    @contextlib.asynccontextmanager
    async def rotation_lock(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        is_enterprise_install: bool | None = False,
        ttl_ms: int = 30_000,
    ) -> AsyncIterator[bool]:
        """Held by one process at a time while it refreshes the installation's token, so
        two processes never spend one refresh token (Slack honours it once). Yields
        whether this process holds it; it expires on its own if the holder dies."""
        key = self._keys(enterprise_id, team_id, is_enterprise_install).rotating
        owner = secrets.token_hex(8)
        held = bool(await self.store.redis.set(key, owner, nx=True, px=ttl_ms))
        try:
            yield held
        finally:
            if held:
                await self.store.redis.register_script(_RELEASE)(keys=[key], args=[owner])

    async def async_place(self, team_id: str, enterprise_id: str, is_enterprise_install: bool) -> None:
        """Remember under which Grid installation a workspace's events come (recovery and
        the fine-tune watcher know only the team)."""
        value = json.dumps([enterprise_id, bool(is_enterprise_install)])
        await self.store.redis.set(keys.team_placement(self.store.prefix, self.client_id, team_id), value)

    async def async_placement(self, team_id: str) -> tuple[str, bool] | None:
        raw = await self.store.redis.get(keys.team_placement(self.store.prefix, self.client_id, team_id))
        if not raw:
            return None
        enterprise, org = json.loads(raw)
        return enterprise, bool(org)

    async def async_teams_of(self, enterprise_id: str) -> list[str]:
        """The workspaces of an org seen through its installations (their placements): an
        org-wide uninstall forgets each of them. A SCAN: only for uninstalls."""
        pattern = keys.team_placement(self.store.prefix, self.client_id, "*")
        teams = []
        async for key in self.store.redis.scan_iter(match=pattern, count=500):
            raw = await self.store.redis.get(key)
            if raw and json.loads(raw)[0] == enterprise_id:
                name = key.decode() if isinstance(key, bytes) else key
                teams.append(name.rsplit("{", 1)[1].rstrip("}"))
        return sorted(teams)

    async def async_history(
        self, *, enterprise_id: str | None, team_id: str | None, is_enterprise_install: bool | None = False
    ) -> list[Installation]:
        """Every installation saved for the workspace, oldest first (with history on)."""
        raw = await self.store.redis.hgetall(
            self._keys(enterprise_id, team_id, is_enterprise_install).installers
        )
        rows = [Installation(**json.loads(v)) for v in raw.values()]
        return sorted(rows, key=lambda i: i.installed_at)


class RedisOAuthStateStore(AsyncOAuthStateStore):
    """OAuth `state` values, each consumed at most once and only before it expires
    (GETDEL: two callbacks racing with one state can't both pass)."""

    def __init__(self, store: Store, *, expiration_seconds: int = 600) -> None:
        self.store = store
        self.expiration_seconds = expiration_seconds
        self._logger = log

    @property
    def logger(self) -> Logger:
        return self._logger

    async def async_issue(self, *args: Any, **kwargs: Any) -> str:
        state = secrets.token_urlsafe(24)
        await self.store.redis.set(
            keys.oauth_state(self.store.prefix, state), str(time.time()), ex=self.expiration_seconds
        )
        return state

    async def async_consume(self, state: str) -> bool:
        if not state or len(state) > 200:
            return False
        found = await self.store.redis.getdel(keys.oauth_state(self.store.prefix, state))
        if found is None:
            self.logger.warning("An OAuth state was unknown, expired or already used")
            return False
        return True
