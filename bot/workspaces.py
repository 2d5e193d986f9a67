"""Which workspace a piece of work is for: its bot's token and identity.

With one workspace (SLACK_BOT_TOKEN) nothing here is set, and the identity learnt from
auth.test at start-up is used. With many (OAuth installs), each request's authorization
reads the workspace's installation from Redis (no Slack call, so the ack isn't delayed)
and sets `CURRENT` for the request and every task it starts: asyncio tasks copy the
context they were created in. So `deps.client` calls Slack with that workspace's token,
`deps.bot_user_id` is that workspace's bot, and nothing from one workspace can go out
with another's token. Work that starts from Redis rather than from a request (recovery
of a dead process's turns, the fine-tune watcher) enters its workspace with `acting_for`.

The installation cache is per process on purpose: a copy of Redis at most
`CACHE_SECONDS` old. An uninstall clears it in the process that receives the event; the
others stop using a revoked token within that time (Slack refuses it meanwhile).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from slack_bolt.authorization import AuthorizeResult
from slack_bolt.authorization.async_authorize import AsyncAuthorize
from slack_sdk.oauth.installation_store.models.installation import Installation
from slack_sdk.oauth.token_rotation.async_rotator import AsyncTokenRotator
from slack_sdk.web.async_client import AsyncWebClient

from core import llm, openai_keys
from core.installations import RedisInstallationStore

if TYPE_CHECKING:
    from bot.deps import BotDeps

log = logging.getLogger(__name__)

CACHE_SECONDS = 30.0
CACHE_SIZE = 10_000
ROTATE_BEFORE_MINUTES = 120  # as Bolt's token rotator: refresh a token two hours before it expires
ROTATION_WAITS = 50  # 5 s for another process's rotation
EXPIRED_MARGIN = 60  # seconds: a token this close to its end is refreshed before it is used
ROTATING_CACHE_SECONDS = 2.0


@dataclass(frozen=True)
class Workspace:
    team_id: str
    enterprise_id: str
    bot_token: str = field(repr=False)
    bot_user_id: str
    bot_id: str
    is_enterprise_install: bool = False
    openai_key: str = field(
        default="", repr=False
    )  # its own, decrypted (core/openai_keys.py); "" for the deployment's


CURRENT: ContextVar[Workspace | None] = ContextVar("threadwise_workspace", default=None)


class WorkspaceClient(AsyncWebClient):
    """An AsyncWebClient whose token is the current workspace's, else the one it was made with."""

    @property  # type: ignore[override]
    def token(self) -> str | None:
        current = CURRENT.get()
        return current.bot_token if current is not None else self._default_token

    @token.setter
    def token(self, value: str | None) -> None:
        self._default_token = value


# (enterprise, team, org-wide) -> (valid until, on the monotonic clock; the workspace).
# One per process (BotDeps.workspace_cache).
Cache = dict[tuple[str, str, bool], tuple[float, "Workspace | None"]]


def forget(cache: Cache, team_id: str, enterprise_id: str = "") -> None:
    """Drop a workspace from this process's cache (it was uninstalled or its tokens revoked)."""
    for key in [k for k in cache if k[1] == (team_id or "") and k[0] in ("", enterprise_id or "")]:
        cache.pop(key, None)
    for key in [k for k in cache if k[0] == (enterprise_id or "") and k[2]]:
        cache.pop(key, None)


def _expiring(found: Installation, now: float) -> bool:
    expires = found.bot_token_expires_at
    return expires is not None and expires <= now + ROTATE_BEFORE_MINUTES * 60


async def _rotated(
    installations: RedisInstallationStore, rotator: AsyncTokenRotator, found: Installation, ids: dict
) -> Installation:
    """The installation with a fresh token, refreshed by one process: whoever holds the
    installation's rotation lock re-reads it (another may have just rotated), refreshes
    and saves it in one script; the others wait for the saved result."""
    for _ in range(ROTATION_WAITS):
        async with installations.rotation_lock(**ids) as held:
            if held:
                current = await installations.async_find_installation(**ids) or found
                if not _expiring(current, time.time()):
                    return current
                refreshed = await rotator.perform_token_rotation(
                    installation=current, minutes_before_expiration=ROTATE_BEFORE_MINUTES
                )
                if refreshed is None:
                    return current
                await installations.async_save(refreshed)
                log.info("Rotated the bot token of %s", ids.get("team_id") or ids.get("enterprise_id"))
                return refreshed
        await asyncio.sleep(0.1)  # another process is rotating it
        current = await installations.async_find_installation(**ids)
        if current is not None and not _expiring(current, time.time()):
            return current
    return found  # still valid for a while: the next request tries again


async def lookup(
    deps: BotDeps,
    *,
    enterprise_id: str | None,
    team_id: str | None,
    is_enterprise_install: bool = False,
) -> Workspace | None:
    """The installed workspace, from this process's cache or Redis (its installation, then
    its own OpenAI key if it set one). Cached per team, also under an org-wide install
    (each workspace of the org has its own id and may have its own key).

    A token due for rotation (two hours before it expires) is still good: it is used, and
    refreshed in the background, so no Slack call delays an ack; only an expired token
    makes the request wait for its refresh."""
    cache, installations = deps.workspace_cache, deps.installations
    key = (enterprise_id or "", team_id or "", bool(is_enterprise_install))
    cached = cache.get(key)
    if cached and time.monotonic() < cached[0]:
        return cached[1]
    ids = {"enterprise_id": enterprise_id, "team_id": team_id, "is_enterprise_install": is_enterprise_install}
    found = await installations.async_find_installation(**ids)
    ttl = CACHE_SECONDS
    if found is not None and deps.rotator is not None and _expiring(found, time.time()):
        if (found.bot_token_expires_at or 0) <= time.time() + EXPIRED_MARGIN:
            found = await _rotated(installations, deps.rotator, found, ids)
        else:
            _rotate_soon(deps, found, ids, key)
            ttl = ROTATING_CACHE_SECONDS  # pick up the refreshed token soon
    workspace = None
    if found is not None and found.bot_token:
        team = team_id or found.team_id or ""
        workspace = Workspace(
            team_id=team,
            enterprise_id=found.enterprise_id or enterprise_id or "",
            bot_token=found.bot_token,
            bot_user_id=found.bot_user_id or "",
            bot_id=found.bot_id or "",
            is_enterprise_install=bool(found.is_enterprise_install),
            openai_key=await _openai_key(deps, team),
        )
    cache[key] = (time.monotonic() + ttl, workspace)
    while len(cache) > CACHE_SIZE:
        cache.pop(next(iter(cache)))
    return workspace


def _rotate_soon(deps: BotDeps, found: Installation, ids: dict, key: tuple) -> None:
    """Refresh a token that is due but still good, once per process at a time."""
    if key in deps.rotating:
        return
    deps.rotating.add(key)

    async def rotate() -> None:
        try:
            await _rotated(deps.installations, deps.rotator, found, ids)
        except Exception:
            log.exception("Couldn't rotate a bot token; the next request tries again")
        finally:
            deps.rotating.discard(key)
            deps.workspace_cache.pop(key, None)

    deps.tasks.spawn(rotate(), name="token-rotation")


async def _openai_key(deps: BotDeps, team: str) -> str:
    try:
        return (
            await openai_keys.load(deps.core.store, team, secret=deps.settings.openai_key_encryption_key)
            or ""
        )
    except openai_keys.OpenAIKeyError as exc:
        log.error("Workspace %s: %s Using the deployment's key.", team, exc)
        return ""


def enter(deps: BotDeps, workspace: Workspace | None) -> None:
    """Make `workspace` the current one for this task and the tasks it starts: its Slack
    token, and its own OpenAI client if it set a key (one client per key, per process)."""
    CURRENT.set(workspace)
    client = None
    if workspace is not None and workspace.openai_key:
        mark = openai_keys.fingerprint(workspace.openai_key)
        entry = deps.openai_clients.get(workspace.team_id)
        if entry is None or entry[0] != mark:
            if entry is not None:  # the workspace changed its key: the old client goes
                deps.tasks.spawn(entry[1].close(), name="openai-client-close")
            entry = (mark, llm.create_openai(deps.settings, api_key=workspace.openai_key))
            deps.openai_clients[workspace.team_id] = entry
        client = entry[1]
    llm.WORKSPACE_CLIENT.set(client)


class RedisAuthorize(AsyncAuthorize):
    """Bolt's authorization from our installation store: one Redis read at most (cached),
    never auth.test (the installation already holds the bot's ids)."""

    def __init__(self, deps: BotDeps) -> None:
        self.deps = deps

    async def __call__(
        self,
        *,
        context,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None,
        **_: object,
    ) -> AuthorizeResult | None:
        workspace = await lookup(
            self.deps,
            enterprise_id=enterprise_id,
            team_id=team_id,
            is_enterprise_install=bool(context.is_enterprise_install),
        )
        if workspace is None:
            log.info("An event from a workspace without an installation (team %s): ignored", team_id)
            return None
        if enterprise_id and team_id:
            await place(self.deps, team_id, enterprise_id, workspace.is_enterprise_install)
        enter(self.deps, workspace)
        return AuthorizeResult(
            enterprise_id=workspace.enterprise_id or enterprise_id,
            team_id=team_id or workspace.team_id,
            bot_token=workspace.bot_token,
            bot_id=workspace.bot_id,
            bot_user_id=workspace.bot_user_id,
            user_id=user_id,
        )


async def place(deps: BotDeps, team: str, enterprise_id: str, org_wide: bool) -> None:
    """Record once per process under which Grid installation `team`'s events come: work
    that starts without a request (recovery, the watcher) knows only the team."""
    if team in deps.placed:
        return
    await deps.installations.async_place(team, enterprise_id, org_wide)
    deps.placed.add(team)


async def org_workspace(body: dict, next, deps: BotDeps) -> None:
    """A Bolt middleware, after authorization: under an org-wide install Slack names no
    workspace in the authorization, so the request's own workspace (from the payload) is
    entered here, with its own id and its own OpenAI key."""
    current = CURRENT.get()
    if current is not None and current.is_enterprise_install and not current.team_id:
        team = (
            body.get("team_id")
            or (body.get("team") or {}).get("id")
            or (body.get("user") or {}).get("team_id")
            or ""
        )
        if team:
            workspace = await lookup(
                deps, enterprise_id=current.enterprise_id, team_id=team, is_enterprise_install=True
            )
            if workspace is not None:
                await place(deps, team, current.enterprise_id, True)
                enter(deps, workspace)
    await next()


@contextlib.asynccontextmanager
async def acting_for(deps: BotDeps, team_id: str) -> AsyncIterator[bool]:
    """Work for `team_id` outside a request: its token for the block. Yields False when
    the workspace has no installation (uninstalled): the caller drops the work. With one
    workspace (no installation store) it does nothing and yields True."""
    if deps.installations is None:
        yield True
        return
    workspace = await lookup(deps, enterprise_id=None, team_id=team_id)
    if workspace is None:  # a workspace of an Enterprise Grid org: where it was installed
        placed = await deps.installations.async_placement(team_id)
        if placed is not None:
            workspace = await lookup(
                deps, enterprise_id=placed[0], team_id=team_id, is_enterprise_install=placed[1]
            )
    saved = (CURRENT.get(), llm.WORKSPACE_CLIENT.get())
    enter(deps, workspace)
    try:
        yield workspace is not None
    finally:
        CURRENT.set(saved[0])
        llm.WORKSPACE_CLIENT.set(saved[1])
