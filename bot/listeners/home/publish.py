"""Publishing the Home tab: on `app_home_opened`, and again after a change made from it.

What it shows comes from Redis in one round trip (core/home.py). Slack is asked twice at
most: whether the user is an admin (cached per process, bot/auth.py) and, only when some
channel has its own persona, which channels the user is in, so a channel's persona is
shown only to people in it.

Under Slack's agent container (the manifest's `agent_view`), opening the app's Messages
tab also sends `app_home_opened` (tab "messages"): it gets the active persona's suggested
prompts, as a new pane thread does.
"""

from __future__ import annotations

import logging

from redis.exceptions import RedisError
from slack_sdk.errors import SlackApiError

from bot import home_view, limits, messages
from bot.auth import is_admin
from bot.deps import BotDeps
from core import home, personas

log = logging.getLogger(__name__)

CHANNEL_PAGES = 5  # 1,000 channels of the user's; past that, their channel personas are cut


async def handle_app_home_opened(body: dict, event: dict, deps: BotDeps) -> None:
    team, user = body.get("team_id", "") or deps.team_id, event.get("user", "")
    if not user:
        return
    if event.get("tab") == "messages":
        deps.tasks.spawn(_suggest_prompts(deps, team, event.get("channel", "")), name="home:prompts")
    elif event.get("tab", "home") == "home":
        deps.tasks.spawn(publish(deps, team, user), name="home:publish")


async def publish(deps: BotDeps, team: str, user: str) -> None:
    try:
        admin = await is_admin(deps, team, user)
        data = await home.load(deps.core.store, team, user, admin=admin, defaults=limits.defaults(deps))
        shared = await shared_channels(deps, user, set(data.channel_choices)) if data.channel_choices else []
        own_keys = deps.installations is not None and bool(deps.settings.openai_key_encryption_key)
        view = home_view.home_view(data, admin=admin, shared_channels=shared, own_keys=own_keys)
    except RedisError as exc:
        log.error("Redis unavailable while building App Home: %s", type(exc).__name__)
        view = home_view.unavailable_view(messages.STORE_DOWN_HOME)
    try:
        await deps.client.views_publish(user_id=user, view=view)
    except SlackApiError as exc:
        log.warning("Couldn't publish App Home: %s", exc.response.get("error"))


async def shared_channels(deps: BotDeps, user: str, wanted: set[str]) -> list[str]:
    """Which of `wanted` the user is in: users.conversations lists a user's public
    channels, and their private ones the bot is also in."""
    found: list[str] = []
    cursor = None
    for _ in range(CHANNEL_PAGES):
        try:
            page = await deps.client.users_conversations(
                user=user,
                types="public_channel,private_channel",
                exclude_archived=True,
                limit=200,
                cursor=cursor,
            )
        except SlackApiError as exc:
            log.info(
                "users.conversations failed (%s); App Home leaves channel personas out",
                exc.response.get("error"),
            )
            return found
        found += [c["id"] for c in page.get("channels", []) if c.get("id") in wanted]
        cursor = (page.get("response_metadata") or {}).get("next_cursor")
        if not cursor:
            break
    return sorted(found)


async def _suggest_prompts(deps: BotDeps, team: str, channel: str) -> None:
    if not channel:
        return
    try:
        resolved = await personas.resolve(deps.core.store, team, channel, None)
        prompts = await personas.prompts_for(deps.core.store, team, resolved.choice.name)
        await deps.client.assistant_threads_setSuggestedPrompts(channel_id=channel, prompts=prompts)
    except RedisError as exc:
        log.warning("Couldn't load suggested prompts: %s", type(exc).__name__)
    except SlackApiError as exc:
        log.info("Couldn't set suggested prompts: %s", exc.response.get("error"))
