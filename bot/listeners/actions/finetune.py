"""Confirm and dismiss buttons of fine-tuning: start a job, cancel one, replace a dataset.

The button only says yes or no; the pending action it points to (claimed once, so a double
click does nothing twice) says what to do, by its `kind`.
"""

from __future__ import annotations

from bot.auth import check_admin
from bot.commands import Args, Ctx, Handler, button_context
from bot.deps import BotDeps
from bot.errors import UserError, reported
from bot.finetune import cards, datasets, jobs
from core.finetune import store as ft

# What confirming a pending action of each kind does (handlers share the command signature).
ON_CONFIRM: dict[str, Handler] = {
    "start": jobs.confirm_start,
    "cancel": jobs.confirm_cancel,
    "overwrite": datasets.confirm_overwrite,
}


async def handle_finetune_button(ack, body: dict, respond, deps: BotDeps) -> None:
    await ack()
    deps.tasks.spawn(_run(deps, body, respond), name="finetune-button")


async def _run(deps: BotDeps, body: dict, respond) -> None:
    action = body["actions"][0]
    ctx = button_context(deps, body, respond)
    async with reported(ctx.say):
        await _decide(ctx, action["action_id"], action["value"])


async def _decide(ctx: Ctx, action_id: str, token: str) -> None:
    refusal = await check_admin(
        ctx.deps, team=ctx.team, user=ctx.user, channel=ctx.channel, action=action_id, detail=token
    )
    if refusal:
        await ctx.say(refusal)
        return
    pending = await ft.take_pending(ctx.deps.core.store, ctx.team, token)
    if pending is None:
        raise UserError("This confirmation has expired or was already used; run the command again.")
    if action_id in cards.DISMISSALS:
        if pending.get("kind") == "overwrite":
            await ft.drop_staged(ctx.deps.core.store, ctx.team, token)
        await ctx.say("OK, nothing was changed.")
        return
    handler = ON_CONFIRM.get(pending.get("kind", ""))
    if handler is None:
        raise UserError("I don't know what this confirmation was for; run the command again.")
    await handler(ctx, Args(text=token, named={**pending, "token": token}))
