""" "Adopt" on a prompt variant: admins only, checked again at click time."""

from __future__ import annotations

import logging

from bot.auth import check_admin
from bot.deps import BotDeps
from bot.replies import ephemeral
from core import optimize, personas

log = logging.getLogger(__name__)


async def handle_adopt_prompt(ack, body: dict, respond, deps: BotDeps) -> None:
    await ack()
    deps.tasks.spawn(adopt(deps, body, respond))


async def adopt(deps: BotDeps, body: dict, respond) -> None:
    team, user = body["team"]["id"], body["user"]["id"]
    channel = (body.get("channel") or {}).get("id") or body.get("container", {}).get("channel_id", "")
    token, _, index = body["actions"][0]["value"].rpartition(":")

    async def say(text: str) -> None:
        await ephemeral(deps, respond, channel=channel, user=user, text=text)

    refusal = await check_admin(
        deps, team=team, user=user, channel=channel, action="adopt prompt", detail=token
    )
    if refusal:
        await say(refusal)
        return
    run = await optimize.load_run(deps.core.store, team, token)
    if run is None:
        await say(
            ":warning: These variants have expired (they are kept for a day). Run `/persona optimize` again."
        )
        return
    current = await personas.get(deps.core.store, team, run["persona"])
    if current is None or current.builtin:
        await say(f":warning: The persona `{run['persona']}` no longer exists.")
        return
    variant = run["variants"][int(index)]
    try:
        updated = personas.make_custom(
            current.name,
            variant["prompt"],
            description=current.description,
            model=current.model,
            temperature=current.temperature,
            constraints=current.constraints,
        )
    except personas.PersonaError as exc:
        await say(f":warning: That variant can't be adopted: {exc}")
        return
    await personas.replace(deps.core.store, team, updated)
    await say(f"Adopted variant {index} as the prompt of *{current.name}*.")
