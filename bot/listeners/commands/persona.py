"""`/persona`: list, set the channel's default, and (admins) manage custom personas."""

from __future__ import annotations

import logging

from slack_sdk.errors import SlackApiError

from bot import blocks, messages
from bot.commands import Args, Ctx, Registry, Subcommand
from bot.deps import BotDeps
from bot.errors import UserError
from bot.listeners.commands.options import parse_options
from core import optimize, personas, usage
from core.personas import Choice, PersonaError

log = logging.getLogger(__name__)


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


async def _unknown(ctx: Ctx, name: str) -> None:
    listed = await listing(ctx.deps, ctx.team, ctx.channel)
    await ctx.say(messages.UNKNOWN_PERSONA.format(name=blocks.escape(name[:80])), listed)


async def show_list(ctx: Ctx, args: Args) -> None:
    await ctx.say("Personas", await listing(ctx.deps, ctx.team, ctx.channel))


async def set_channel(ctx: Ctx, args: Args) -> None:
    """`/persona <name> [domain]`: the channel's persona for new threads, announced there."""
    name, _, domain = args.text.partition(" ")
    persona = await personas.get(ctx.deps.core.store, ctx.team, name.lower())
    if persona is None:
        await _unknown(ctx, name)
        return
    domain = personas.check_domain(domain)
    choice = Choice(persona.name, domain, by=ctx.user)
    await personas.set_channel(ctx.deps.core.store, ctx.team, ctx.channel, choice)
    label = persona.name + (f" ({blocks.escape(domain)})" if domain else "")
    note = messages.PERSONA_SET_CHANNEL.format(user=ctx.user, persona=label)
    try:
        await ctx.deps.client.chat_postMessage(channel=ctx.channel, text=note, blocks=blocks.notice(note))
    except SlackApiError as exc:
        if exc.response.get("error") in ("not_in_channel", "channel_not_found"):
            await ctx.say(messages.NOT_IN_CHANNEL + " " + messages.SETTING_SAVED_ANYWAY)
            return
        raise
    await ctx.say(f"Done: *{label}* is now this channel's persona.")


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
    reasoning = (
        opts["reasoning"][-1].lower() if "reasoning" in opts else (base.reasoning_effort if base else None)
    )
    if reasoning == "default":
        reasoning = None
    return personas.make_custom(
        name,
        prompt or (base.prompt if base else ""),
        description=opts.get("description", [base.description if base else ""])[-1],
        model=model,
        temperature=temperature,
        constraints=constraints,
        reasoning_effort=reasoning,
    )


CREATE_USAGE = (
    "`/persona create <name> [model=…] [temperature=…] [reasoning=none|minimal|low|medium|high|xhigh] "
    '[constraint="…"] <system prompt>`'
)


async def _create(ctx: Ctx, args: Args) -> None:
    name, _, body = args.text.partition(" ")
    if not name or not body.strip():
        await ctx.say("Usage: " + CREATE_USAGE)
        return
    persona = _build(name, body)
    if not await personas.create(ctx.deps.core.store, ctx.team, persona):
        await ctx.say(
            f":warning: A persona called `{persona.name}` already exists; use `/persona edit {persona.name} …`."
        )
        return
    await ctx.say(f"Created persona *{persona.name}*: {blocks.escape(personas.describe(persona))}")


async def _custom(ctx: Ctx, name: str, doing: str) -> personas.Persona | None:
    """The custom persona `name`; None (having said why) if it's unknown or built-in."""
    persona = await personas.get(ctx.deps.core.store, ctx.team, name)
    if persona is None:
        await _unknown(ctx, name)
        return None
    if persona.builtin:
        raise UserError(f"`{persona.name}` is built-in and can't be {doing}; create a custom copy instead.")
    return persona


async def _edit(ctx: Ctx, args: Args) -> None:
    name, _, body = args.text.partition(" ")
    current = await _custom(ctx, name, "edited")
    if current is None:
        return
    updated = _build(current.name, body, base=current)
    await personas.replace(ctx.deps.core.store, ctx.team, updated)
    await ctx.say(f"Updated *{updated.name}*: {blocks.escape(personas.describe(updated))}")


async def _delete(ctx: Ctx, args: Args) -> None:
    name = args.first().lower()
    if name in personas.BUILTINS:
        await ctx.say(f":warning: `{name}` is built-in and can't be deleted.")
        return
    if not await personas.delete(ctx.deps.core.store, ctx.team, name):
        await _unknown(ctx, name)
        return
    await ctx.say(f"Deleted persona *{name}*. Threads and channels that used it fall back to the next scope.")


async def _workspace(ctx: Ctx, args: Args) -> None:
    name, _, domain = args.text.partition(" ")
    persona = await personas.get(ctx.deps.core.store, ctx.team, name)
    if persona is None:
        await _unknown(ctx, name)
        return
    choice = Choice(persona.name, personas.check_domain(domain), by=ctx.user)
    await personas.set_workspace(ctx.deps.core.store, ctx.team, choice=choice)
    await ctx.say(messages.PERSONA_SET_WORKSPACE.format(persona=persona.name))


async def _team(ctx: Ctx, args: Args) -> None:
    text = args.text
    if len(text) > personas.MAX_PROMPT_CHARS:
        raise PersonaError(
            f"The description is {len(text)} characters; the limit is {personas.MAX_PROMPT_CHARS}."
        )
    await personas.set_workspace(ctx.deps.core.store, ctx.team, prompt=text.strip())
    await ctx.say(messages.TEAM_PROMPT_SET if text.strip() else messages.TEAM_PROMPT_CLEARED)


async def _prompts(ctx: Ctx, args: Args) -> None:
    name, _, rest = args.text.strip().partition(" ")
    persona = await personas.get(ctx.deps.core.store, ctx.team, name.lower())
    if persona is None:
        await _unknown(ctx, name)
        return
    prompts = personas.parse_prompts(rest)
    await personas.set_prompts(ctx.deps.core.store, ctx.team, persona.name, prompts)
    if not prompts:
        await ctx.say(f"*{persona.name}* suggests its default prompts in the assistant pane again.")
        return
    listed = "\n".join(f"• *{blocks.escape(p['title'])}*: {blocks.escape(p['message'])}" for p in prompts)
    await ctx.say(f"New assistant-pane chats with *{persona.name}* suggest:\n{listed}")


async def _optimize(ctx: Ctx, args: Args) -> None:
    name = args.first().lower()
    persona = await _custom(ctx, name, "optimized")
    if persona is None:
        return
    await ctx.say(f"_Asking the model for improved variants of *{name}*…_")
    settings = ctx.deps.settings
    spent: dict[str, int] = {}
    variants, error = await optimize.propose(
        ctx.deps.core.openai,
        model=settings.openai_model,
        persona=persona,
        attempts=settings.openai_max_attempts,
        spent=spent,
    )
    await usage.record_calls(
        ctx.deps.core.store,
        team=ctx.team,
        channel=ctx.channel,
        user=ctx.user,
        purpose=f"{persona.name} (optimize)",
        spent={settings.openai_model: spent},
    )
    if not variants:
        await ctx.say(
            f":warning: The model didn't produce usable variants ({blocks.escape(error)}). Try again."
        )
        return
    token = await optimize.save_run(ctx.deps.core.store, ctx.team, name, variants)
    await ctx.say(f"Prompt variants for {name}", blocks.optimize_variants(name, variants, token))


PERSONA = Registry(
    "/persona",
    title="Personas",
    on_empty=Subcommand((), show_list, "`/persona`: list personas and the one active here"),
    entries=(
        Subcommand((), set_channel, "`/persona <name> [domain]`: this channel's default for new threads"),
        Subcommand(("create",), _create, CREATE_USAGE, admin=True),
        Subcommand(
            ("edit",),
            _edit,
            "`/persona edit <name> [options] [new prompt]` (`constraint=none` clears)",
            admin=True,
        ),
        Subcommand(("delete",), _delete, "`/persona delete <name>`", admin=True),
        Subcommand(
            ("optimize",), _optimize, "`/persona optimize <name>`: scored variants to adopt", admin=True
        ),
        Subcommand(
            ("workspace",),
            _workspace,
            "`/persona workspace <name> [domain]`: the workspace default",
            admin=True,
        ),
        Subcommand(
            ("team",), _team, "`/persona team <description>`: the team's domain, in every persona", admin=True
        ),
        Subcommand(
            ("prompts",),
            _prompts,
            "`/persona prompts <name> [Title | message ; …]`: the assistant pane's suggestions (none: defaults)",
            admin=True,
        ),
    ),
)
