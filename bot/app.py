"""Build the Bolt app: authorization (the start-up auth.test for one workspace, the
Redis installation store for many), the install flow for many, then the listeners."""

from __future__ import annotations

import logging
from functools import partial

from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.oauth.async_callback_options import AsyncCallbackOptions, AsyncFailureArgs, AsyncSuccessArgs
from slack_bolt.oauth.async_oauth_flow import AsyncOAuthFlow
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_bolt.response import BoltResponse

from bot import workspaces
from bot.deps import BotDeps
from bot.listeners import register_listeners
from bot.workspaces import RedisAuthorize
from core import admins, audit, workspace_data
from core.installations import RedisOAuthStateStore

log = logging.getLogger(__name__)


def create_app(deps: BotDeps) -> AsyncApp:
    """An AsyncApp that never calls Slack before acking.

    Bolt's single-team authorization calls auth.test on the first request, before the
    ack. We already called it at start-up, so `authorize` hands Bolt that result.
    """

    async def authorize(enterprise_id=None, team_id=None, user_id=None) -> AuthorizeResult:
        return AuthorizeResult(
            enterprise_id=enterprise_id,
            team_id=team_id or deps.team_id,
            bot_token=deps.settings.slack_bot_token,
            bot_id=deps.bot_id,
            bot_user_id=deps.bot_user_id,
            user_id=user_id,
        )

    if deps.installations is not None:
        app = AsyncApp(
            client=deps.client,
            authorize=RedisAuthorize(deps),
            oauth_flow=oauth_flow(deps),
            signing_secret=deps.settings.slack_signing_secret,
            logger=logging.getLogger("slack_bolt"),
        )
    else:
        app = AsyncApp(
            client=deps.client,
            authorize=authorize,
            signing_secret=deps.settings.slack_signing_secret or None,
            request_verification_enabled=bool(deps.settings.slack_signing_secret),
            logger=logging.getLogger("slack_bolt"),
        )
    if deps.installations is not None:
        app.middleware(partial(workspaces.org_workspace, deps=deps))
    register_listeners(app, deps)
    return app


def oauth_flow(deps: BotDeps) -> AsyncOAuthFlow:
    """Slack's install flow (`GET /slack/install`, `GET /slack/oauth_redirect`) with our
    Redis stores; its oauth.v2.access call goes through SLACK_API_URL like every other."""
    s = deps.settings
    settings = AsyncOAuthSettings(
        client_id=s.slack_client_id,
        client_secret=s.slack_client_secret,
        scopes=list(s.slack_scopes),
        redirect_uri=s.slack_redirect_uri or None,
        installation_store=deps.installations,
        state_store=RedisOAuthStateStore(deps.core.store),
        callback_options=AsyncCallbackOptions(success=_installed(deps), failure=_failed),
    )
    return AsyncOAuthFlow(client=deps.client, settings=settings)


def _installed(deps: BotDeps):
    async def success(args: AsyncSuccessArgs) -> BoltResponse:
        """A (re)install: the workspace is no longer to be forgotten."""
        installation = args.installation
        team = installation.team_id or installation.enterprise_id or ""
        await workspace_data.cancel_forget(deps.core.store, team)
        if installation.user_id and installation.team_id:  # its first installer is its first admin
            named = await admins.name_installer(deps.core.store, installation.team_id, installation.user_id)
            await audit.record(
                deps.core.store,
                installation.team_id,
                user=installation.user_id,
                action="install",
                allowed=True,
                detail="first install: named admin" if named else "reinstall",
            )
        workspaces.forget(deps.workspace_cache, installation.team_id or "", installation.enterprise_id or "")
        log.info("Installed in workspace %s", team)
        return await args.default.success(args)

    return success


async def _failed(args: AsyncFailureArgs) -> BoltResponse:
    log.warning("An install failed: %s", args.reason)
    return await args.default.failure(args)
