"""Ephemeral answers to slash commands, surviving an expired response_url."""

from __future__ import annotations

import logging

from slack_sdk.errors import SlackApiError

from bot import blocks as b
from bot.deps import BotDeps

log = logging.getLogger(__name__)


async def ephemeral(
    deps: BotDeps, respond, *, channel: str, user: str, text: str, blocks: list | None = None
) -> None:
    """Answer only the user: through response_url, else chat.postEphemeral.

    A response_url allows 5 uses in 30 minutes; after that Slack answers 404
    (`expired_url`/`used_url`), and the user would otherwise hear nothing.
    """
    blocks = blocks or b.notice(text)
    if respond is not None:
        try:
            response = await respond(
                text=text, blocks=blocks, response_type="ephemeral", replace_original=False
            )
            if response is None or 200 <= response.status_code < 300:
                return
            log.info("response_url refused (%s); using chat.postEphemeral", response.status_code)
        except Exception as exc:  # a dead URL must not lose the answer
            log.info("response_url failed (%s); using chat.postEphemeral", type(exc).__name__)
    try:
        await deps.client.chat_postEphemeral(channel=channel, user=user, text=text, blocks=blocks)
    except SlackApiError as exc:
        log.warning("Could not reach %s ephemerally: %s", user, exc.response.get("error"))
