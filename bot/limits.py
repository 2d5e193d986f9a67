"""Usage limits as members see them: a turn over the workspace's monthly budget or its
person's hourly cap is not answered; they are told what was hit and until when, and
admins are told once (core/usage.py counts and decides)."""

from __future__ import annotations

import logging

from slack_sdk.errors import SlackApiError

from bot import blocks, messages, visibility
from bot.deps import BotDeps
from bot.usage_report import dollars
from core import admins, usage
from core.conversations import Incoming

log = logging.getLogger(__name__)


def defaults(deps: BotDeps) -> usage.Limits:
    s = deps.settings
    return usage.Limits(budget_usd=s.monthly_budget_usd, user_turns_per_hour=s.user_turns_per_hour)


async def refused(deps: BotDeps, incoming: Incoming, *, kept: bool = True) -> bool:
    """True if a limit stops this turn; the member (and once, the admins) were told.
    `kept`: the question stays in the thread's memory (a queued turn's does)."""
    store = deps.core.store
    current = await usage.limits(store, incoming.team, defaults(deps))
    refusal = await usage.admit(store, incoming.team, incoming.user, current)
    if refusal is None:
        return False
    log.info("Turn in %s refused: %s limit", incoming.channel, refusal.what)
    until = messages.slack_date(refusal.until, refusal.until.strftime("%Y-%m-%d %H:%M UTC"))
    if refusal.what == "budget":
        used, limit = dollars(refusal.used), dollars(refusal.limit)
        template, admin_template = messages.BUDGET_HIT, messages.ADMIN_BUDGET_HIT
    else:
        used, limit = f"{refusal.used:.0f}", f"{refusal.limit:.0f}"
        template, admin_template = messages.USER_LIMIT_HIT, messages.ADMIN_USER_LIMIT_HIT
    text = template.format(used=used, limit=limit, until=until, kept=messages.KEPT_IN_THREAD if kept else "")
    try:
        await deps.client.chat_postEphemeral(
            channel=incoming.channel, user=incoming.user, thread_ts=incoming.thread_ts or None, text=text
        )
    except SlackApiError as exc:
        log.warning("Couldn't tell a member about a limit: %s", exc.response.get("error"))
    if refusal.tell_admins:
        notice = admin_template.format(used=used, limit=limit, until=until, user=incoming.user)
        await tell_admins(deps, incoming.team, notice)
    return True


NOTIFIED_ADMINS = 5  # named admins told by DM at most


async def tell_admins(deps: BotDeps, team: str, text: str) -> None:
    """Where this workspace's admins will see it. One workspace: the admin channels if
    there are any, else a DM to each of ADMIN_USER_IDS. Many workspaces (those settings
    are the deployment's, not a workspace's): a DM to the admins the workspace named,
    its installer first among them. With nobody to tell, the notice is logged and
    `/usage` shows the limit as reached."""
    s = deps.settings
    channels, users = sorted(s.admin_channel_ids), sorted(s.admin_user_ids)
    if deps.installations is not None:
        channels, users = [], (await admins.named(deps.core.store, team))[:NOTIFIED_ADMINS]
    targets = list(channels)
    try:
        for user in users if not channels else ():
            targets.append(await visibility.dm_with(deps, user))
        for channel in targets:
            await deps.client.chat_postMessage(channel=channel, text=text, blocks=blocks.notice(text))
    except SlackApiError as exc:
        log.warning("Couldn't notify admins of a limit: %s", exc.response.get("error"))
    if not targets:
        log.warning("A usage limit was reached in %s with no admin to tell in Slack", team)
