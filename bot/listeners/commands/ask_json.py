"""`/ask-json <schema> <question>`, and (admins) `/ask-json schema add|list|delete`."""

from __future__ import annotations

from bot import blocks, messages
from bot.commands import Args, Ctx, Registry, Subcommand
from bot.errors import UserError
from bot.json_answers import answer_in_channel, resolve_schema
from core import schemas

# The question is posted in the channel above the answer; a section holds 3,000 characters.
MAX_QUESTION_CHARS = 2_000


async def ask(ctx: Ctx, args: Args) -> None:
    """Post the question in the channel and answer it there, as validated JSON."""
    schema_arg, question = schemas.split_schema_arg(args.text)
    schema = await resolve_schema(ctx.deps, ctx.team, schema_arg)
    if not question:
        raise UserError(messages.EMPTY_QUESTION)
    if len(question) > MAX_QUESTION_CHARS:
        raise UserError(messages.QUESTION_TOO_LONG.format(n=len(question), limit=MAX_QUESTION_CHARS))
    await answer_in_channel(
        ctx.deps,
        team=ctx.team,
        channel=ctx.channel,
        user=ctx.user,
        schema=schema,
        question=question,
        request_id=ctx.request_id,
    )


async def list_schemas(ctx: Ctx, args: Args) -> None:
    if args.text:  # `/ask-json schema remove x`: a typo, not a request for the list
        raise UserError(ASK_JSON.usage())
    items = [
        (s.name, s.description, s.builtin) for s in await schemas.list_all(ctx.deps.core.store, ctx.team)
    ]
    await ctx.say("JSON schemas", blocks.schema_list(items))


async def add_schema(ctx: Ctx, args: Args) -> None:
    name, _, body = args.text.partition(" ")
    if not body.strip():
        raise UserError("Usage: `/ask-json schema add <name> <json schema>`")
    saved = await schemas.save(ctx.deps.core.store, ctx.team, name, body)
    note = f" Normalized for strict mode: {blocks.escape('; '.join(saved.notes))}." if saved.notes else ""
    await ctx.say(f"Saved schema `{saved.name}`.{note}")


async def delete_schema(ctx: Ctx, args: Args) -> None:
    name = args.first()
    shown = blocks.escape(name[:80])
    if name.lower() in schemas.BUILTINS:
        raise UserError(f"`{shown}` is built-in and can't be deleted.")
    if not await schemas.delete(ctx.deps.core.store, ctx.team, name):
        raise UserError(f"There's no workspace schema called `{shown}`.")
    await ctx.say(f"Deleted schema `{shown}`.")


_NAMES = ", ".join(f"`{n}`" for n in schemas.BUILTINS)

ASK_JSON = Registry(
    "/ask-json",
    title="Structured JSON answers",
    entries=(
        Subcommand(
            (),
            ask,
            f"`/ask-json <schema> <question>`: the schema is a name ({_NAMES}, or the workspace's) "
            "or an inline JSON Schema",
        ),
        Subcommand(("schema", "list"), list_schemas, "`/ask-json schema list`"),
        Subcommand(("schema",), list_schemas, "`/ask-json schema`: the same list"),
        Subcommand(("schema", "add"), add_schema, "`/ask-json schema add <name> <json schema>`", admin=True),
        Subcommand(("schema", "delete"), delete_schema, "`/ask-json schema delete <name>`", admin=True),
    ),
)
