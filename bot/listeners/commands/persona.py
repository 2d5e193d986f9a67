"""`/persona`: list, set the channel's default, and (admins) manage custom personas."""

from __future__ import annotations

import logging

from redis.exceptions import RedisError
from slack_sdk.errors import SlackApiError

from bot import blocks, messages
from bot.auth import check_admin
from bot.deps import BotDeps
from bot.listeners.commands.options import parse_options
from bot.replies import ephemeral
from core import optimize, personas
from core.personas import Choice, PersonaError

log = logging.getLogger(__name__)

ADMIN_SUBCOMMANDS = {"create", "edit", "delete", "optimize", "workspace", "team"}


async def handle_persona(ack, command: dict, respond, deps: BotDeps) -> None:
    await ack()
    deps.tasks.spawn(run_persona(deps, command, respond), name="persona-command")


async def run_persona(deps: BotDeps, command: dict, respond) -> None:
    team, channel, user = command["team_id"], command["channel_id"], command["user_id"]
    text = (command.get("text") or "").strip()
    sub, _, rest = text.partition(" ")
    sub = sub.lower()

    async def say(msg: str, blocks_: list | None = None) -> None:
        await ephemeral(deps, respond, channel=channel, user=user, text=msg, blocks=blocks_)

    try:
        if not text:
            await say("Personas", await listing(deps, team, channel))
            return
        if sub == "help":
            await say(messages.PERSONA_USAGE)
            return
        if sub in ADMIN_SUBCOMMANDS:
            refusal = await check_admin(
                deps, team=team, user=user, channel=channel, action=f"/persona {sub}", detail=rest[:200]
            )
            if refusal:
                await say(refusal)
                return
            await ADMIN[sub](deps, team=team, channel=channel, user=user, rest=rest.strip(), say=say)
            return
        await set_channel(deps, team=team, channel=channel, user=user, name=sub, domain=rest.strip(), say=say)
    except PersonaError as exc:
        await say(f":warning: {blocks.escape(str(exc))}")
    except RedisError:
        await say(
            messages.STORE_DOWN.replace("didn't answer and your message wasn't saved", "changed nothing")
        )
    except Exception:  # never silence: the asker hears that something broke
        log.exception("/persona failed")
        await say(messages.COMMAND_FAILED)


async def listing(deps: BotDeps, team: str, channel: str) -> list[dict]:
    store = deps.core.store
    resolved = await personas.resolve(
        store, team, channel, None, default_team_prompt=deps.settings.workspace_persona_prompt
    )
    custom = await personas.list_custom(store, team)
    active = resolved.choice.name + (
        f" ({blocks.escape(resolved.choice.domain)})" if resolved.choice.domain else ""
    )
    scope = {"channel": "for this channel", "workspace": "for the workspace", "built-in": "by default"}.get(
        resolved.choice.scope, resolved.choice.scope
    )
    return blocks.persona_list(
        [(p.name, blocks.escape(personas.describe(p))) for p in personas.BUILTINS.values()],
        [(p.name, blocks.escape(personas.describe(p))) for p in custom],
        active=resolved.choice.name,
        active_scope=f"{scope}: {active}",
    )


async def _unknown(deps: BotDeps, team: str, channel: str, name: str, say) -> None:
    await say(
        messages.UNKNOWN_PERSONA.format(name=blocks.escape(name[:80])), await listing(deps, team, channel)
    )


async def set_channel(deps: BotDeps, *, team, channel, user, name, domain, say) -> None:
    persona = await personas.get(deps.core.store, team, name)
    if persona is None:
        await _unknown(deps, team, channel, name, say)
        return
    domain = personas.check_domain(domain)
    await personas.set_channel(deps.core.store, team, channel, Choice(persona.name, domain, by=user))
    label = persona.name + (f" ({blocks.escape(domain)})" if domain else "")
    note = messages.PERSONA_SET_CHANNEL.format(user=user, persona=label)
    try:
        await deps.client.chat_postMessage(channel=channel, text=note, blocks=blocks.notice(note))
    except SlackApiError as exc:
        if exc.response.get("error") in ("not_in_channel", "channel_not_found"):
            await say(messages.NOT_IN_CHANNEL)
            return
        raise
    await say(f"Done: *{label}* is now this channel's persona.")


def _build(name: str, rest: str, base: personas.Persona | None = None) -> personas.Persona:
    opts, prompt = parse_options(rest)
    temperature = base.temperature if base else None
    if "temperature" in opts:
        raw = opts["temperature"][-1]
        try:
            temperature = None if raw.lower() == "none" else float(raw)
        except ValueError as exc:
            raise PersonaError(f"temperature must be a number, got `{raw[:40]}`.") from exc
    constraints = list(base.constraints) if base else []
    if "constraint" in opts:
        given = [c for c in opts["constraint"] if c.lower() != "none"]
        constraints = (
            given
            if base is None or any(c.lower() == "none" for c in opts["constraint"])
            else constraints + given
        )
    model = opts["model"][-1] if "model" in opts else (base.model if base else None)
    if model and model.lower() == "none":
        model = None
    return personas.make_custom(
        name,
        prompt or (base.prompt if base else ""),
        description=opts.get("description", [base.description if base else ""])[-1],
        model=model,
        temperature=temperature,
        constraints=constraints,
    )


async def _create(deps: BotDeps, *, team, channel, user, rest, say) -> None:
    name, _, body = rest.partition(" ")
    if not name or not body.strip():
        await say(
            'Usage: `/persona create <name> [model=…] [temperature=…] [constraint="…"] <system prompt>`'
        )
        return
    persona = _build(name, body)
    if not await personas.create(deps.core.store, team, persona):
        await say(
            f":warning: A persona called `{persona.name}` already exists; use `/persona edit {persona.name} …`."
        )
        return
    await say(f"Created persona *{persona.name}*: {blocks.escape(personas.describe(persona))}")


async def _edit(deps: BotDeps, *, team, channel, user, rest, say) -> None:
    name, _, body = rest.partition(" ")
    current = await personas.get(deps.core.store, team, name)
    if current is None or current.builtin:
        if current is None:
            await _unknown(deps, team, channel, name, say)
        else:
            await say(f":warning: `{name}` is built-in and can't be edited; create a custom persona instead.")
        return
    updated = _build(current.name, body, base=current)
    await personas.replace(deps.core.store, team, updated)
    await say(f"Updated *{updated.name}*: {blocks.escape(personas.describe(updated))}")


async def _delete(deps: BotDeps, *, team, channel, user, rest, say) -> None:
    name = rest.split(" ")[0].lower()
    if name in personas.BUILTINS:
        await say(f":warning: `{name}` is built-in and can't be deleted.")
        return
    if not await personas.delete(deps.core.store, team, name):
        await _unknown(deps, team, channel, name, say)
        return
    await say(f"Deleted persona *{name}*. Threads and channels that used it fall back to the next scope.")


async def _workspace(deps: BotDeps, *, team, channel, user, rest, say) -> None:
    name, _, domain = rest.partition(" ")
    persona = await personas.get(deps.core.store, team, name)
    if persona is None:
        await _unknown(deps, team, channel, name, say)
        return
    domain = personas.check_domain(domain)
    await personas.set_workspace(deps.core.store, team, choice=Choice(persona.name, domain, by=user))
    await say(messages.PERSONA_SET_WORKSPACE.format(persona=persona.name))


async def _team(deps: BotDeps, *, team, channel, user, rest, say) -> None:
    if len(rest) > personas.MAX_PROMPT_CHARS:
        raise PersonaError(
            f"The description is {len(rest)} characters; the limit is {personas.MAX_PROMPT_CHARS}."
        )
    await personas.set_workspace(deps.core.store, team, prompt=rest.strip())
    await say(messages.TEAM_PROMPT_SET if rest.strip() else "Cleared the team description.")


async def _optimize(deps: BotDeps, *, team, channel, user, rest, say) -> None:
    name = rest.split(" ")[0].lower()
    persona = await personas.get(deps.core.store, team, name)
    if persona is None or persona.builtin:
        if persona is None:
            await _unknown(deps, team, channel, name, say)
        else:
            await say(f":warning: `{name}` is built-in; create a custom copy to optimize it.")
        return
    await say(f"_Asking the model for improved variants of *{name}*…_")
    try:
        variants, error = await optimize.propose(
            deps.core.openai,
            model=deps.settings.openai_model,
            persona=persona,
            attempts=deps.settings.openai_max_attempts,
        )
    except Exception as exc:
        from core import llm

        await say(messages.llm_error(llm.error_kind(exc)))
        return
    if not variants:
        await say(f":warning: The model didn't produce usable variants ({error}). Try again.")
        return
    token = await optimize.save_run(deps.core.store, team, name, variants)
    await say(f"Prompt variants for {name}", blocks.optimize_variants(name, variants, token))


ADMIN = {
    "create": _create,
    "edit": _edit,
    "delete": _delete,
    "optimize": _optimize,
    "workspace": _workspace,
    "team": _team,
}
