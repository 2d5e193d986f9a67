""" "Adopt" on a prompt variant: admins only, checked again at click time."""

from __future__ import annotations

import logging

from bot.auth import check_admin
from bot.blocks import escape
from bot.commands import Ctx, button_context
from bot.deps import BotDeps
from bot.errors import UserError, reported
from core import optimize, personas

log = logging.getLogger(__name__)


async def handle_adopt_prompt(ack, body: dict, respond, deps: BotDeps) -> None:
    await ack()
    deps.tasks.spawn(adopt(deps, body, respond))


async def adopt(deps: BotDeps, body: dict, respond) -> None:
    ctx = button_context(deps, body, respond)
    async with reported(ctx.say):
        await _adopt(ctx, body["actions"][0]["value"])


async def _adopt(ctx: Ctx, value: str) -> None:
    token, _, index = value.rpartition(":")
    store = ctx.deps.core.store
    refusal = await check_admin(
        ctx.deps, team=ctx.team, user=ctx.user, channel=ctx.channel, action="adopt prompt", detail=token
    )
    if refusal:
        await ctx.say(refusal)
        return
    run = await optimize.load_run(store, ctx.team, token)
    if run is None:
        raise UserError(
            "These variants have expired (they are kept for a day). Run `/persona optimize` again."
        )
    current = await personas.get(store, ctx.team, run["persona"])
    if current is None or current.builtin:
        raise UserError(f"The persona `{run['persona']}` no longer exists.")
    try:
        updated = personas.make_custom(
            current.name,
            run["variants"][int(index)]["prompt"],
            description=current.description,
            model=current.model,
            temperature=current.temperature,
            constraints=current.constraints,
        )
    except personas.PersonaError as exc:
        raise UserError(f"That variant can't be adopted: {escape(str(exc))}") from exc
    await personas.replace(store, ctx.team, updated)
    await ctx.say(f"Adopted variant {index} as the prompt of *{current.name}*.")
