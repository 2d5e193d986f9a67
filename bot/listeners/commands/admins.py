"""`/finetune admins`: the admins a workspace names itself (core/admins.py). Only admins
run these (the registry checks and audits it); the change is audited with its target."""

from __future__ import annotations

import re

from bot.auth import clear_cached
from bot.commands import Args, Ctx
from bot.errors import UserError
from core import admins, audit

_MENTION = re.compile(r"<@([UW][A-Z0-9]{1,30})(?:\|[^>]*)?>")


def _target(args: Args) -> str:
    found = _MENTION.search(args.text)
    if not found:
        raise UserError("Name a person with an @mention, e.g. `/finetune admins add @dana`.")
    return found.group(1)


async def add(ctx: Ctx, args: Args) -> None:
    user = _target(args)
    added = await admins.add(ctx.deps.core.store, ctx.team, user)
    clear_cached(ctx.deps, ctx.team, user)
    await audit.record(
        ctx.deps.core.store, ctx.team, user=ctx.user, action="admins add", allowed=True, detail=user
    )
    await ctx.say(f"Done: <@{user}> is an admin here." if added else f"<@{user}> was already an admin here.")


async def remove(ctx: Ctx, args: Args) -> None:
    user = _target(args)
    if user == ctx.user:
        raise UserError("You can't remove yourself; ask another admin.")
    removed = await admins.remove(ctx.deps.core.store, ctx.team, user)
    clear_cached(ctx.deps, ctx.team, user)
    await audit.record(
        ctx.deps.core.store, ctx.team, user=ctx.user, action="admins remove", allowed=True, detail=user
    )
    await ctx.say(
        f"Done: <@{user}> is no longer named an admin here (within a minute everywhere)."
        if removed
        else f"<@{user}> wasn't named an admin here (Slack's own admins and owners always are)."
    )


async def listing(ctx: Ctx, args: Args) -> None:
    named = await admins.named(ctx.deps.core.store, ctx.team)
    lines = ["*Admins named here*: " + (", ".join(f"<@{u}>" for u in named) if named else "_none_")]
    lines.append("The workspace's Slack admins and owners, and ADMIN_USER_IDS, are admins too.")
    await ctx.say("\n".join(lines))
