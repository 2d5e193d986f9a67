"""Build the Bolt app: authorization from the start-up auth.test, then the listeners."""

from __future__ import annotations

import logging

from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult

from bot.deps import BotDeps
from bot.listeners import register_listeners


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

    app = AsyncApp(
        client=deps.client,
        authorize=authorize,
        signing_secret=deps.settings.slack_signing_secret or None,
        request_verification_enabled=bool(deps.settings.slack_signing_secret),
        logger=logging.getLogger("slack_bolt"),
    )
    register_listeners(app, deps)
    return app
