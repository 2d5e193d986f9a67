"""The app leaving a workspace: `app_uninstalled` and `tokens_revoked`.

The installation is removed at once (no token of that workspace is used again), and the
workspace's data is deleted after UNINSTALL_GRACE_DAYS (core/workspace_data.py), unless
it installs the app again before then. With one workspace (SLACK_BOT_TOKEN) there is no
installation to remove, and the data is kept: the operator decides.
"""

from __future__ import annotations

import logging

from bot import workspaces
from bot.deps import BotDeps
from core import workspace_data

log = logging.getLogger(__name__)


async def handle_app_uninstalled(body: dict, deps: BotDeps) -> None:
    await _leave(deps, body, why="uninstalled")


async def handle_tokens_revoked(body: dict, event: dict, deps: BotDeps) -> None:
    tokens = event.get("tokens") or {}
    if deps.installations is not None:
        for user in tokens.get("oauth") or []:
            await deps.installations.async_delete_installation(
                enterprise_id=body.get("enterprise_id"), team_id=body.get("team_id"), user_id=user
            )
    if tokens.get("bot"):
        await _leave(deps, body, why="bot token revoked")


async def _leave(deps: BotDeps, body: dict, *, why: str) -> None:
    team, enterprise = body.get("team_id") or "", body.get("enterprise_id") or ""
    if deps.installations is None:
        log.warning("The app was %s in %s; its data is kept (one-workspace mode)", why, team)
        return
    org_wide = bool(((body.get("authorizations") or [{}])[0] or {}).get("is_enterprise_install"))
    # an org-wide installation is kept under the org alone (core/installations.py)
    await deps.installations.async_delete_all(
        enterprise_id=enterprise or None, team_id=None if org_wide else (team or None)
    )
    teams = await deps.installations.async_teams_of(enterprise) if org_wide and enterprise else []
    grace = deps.settings.uninstall_grace_days * 86400
    for each in sorted({*teams, team} - {""}):  # an org-wide uninstall: every workspace of the org seen
        workspaces.forget(deps.workspace_cache, each, enterprise)
        await workspace_data.schedule_forget(deps.core.store, each, after_seconds=grace)
    log.info(
        "The app was %s in %s: installation removed, data deleted in %.0f days", why, team, grace / 86400
    )
