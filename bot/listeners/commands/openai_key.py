"""`/finetune openai-key <key>|clear`: a workspace's own OpenAI key (many-workspace
installs), checked with OpenAI first, kept encrypted (core/openai_keys.py), audited by
its fingerprint only. Slack doesn't show a slash command's text to anyone else."""

from __future__ import annotations

import asyncio

import openai

from bot import workspaces
from bot.commands import Args, Ctx
from bot.deps import BotDeps
from bot.errors import UserError
from core import audit, llm, openai_keys


async def set_key(ctx: Ctx, args: Args) -> None:
    text = args.text.strip()
    if text.lower() == "clear":
        _usable(ctx.deps)
        await openai_keys.clear(ctx.deps.core.store, ctx.team)
        workspaces.forget(ctx.deps.workspace_cache, ctx.team)
        await audit.record(
            ctx.deps.core.store, ctx.team, user=ctx.user, action="openai-key clear", allowed=True
        )
        await ctx.say("Done: this workspace uses the deployment's OpenAI key again.")
        return
    mark = await check_and_save(ctx.deps, ctx.team, ctx.user, text)
    await ctx.say(
        f"Done: this workspace now uses its own OpenAI key {mark} for answers and fine-tuning "
        "(every process within 30 s). `/finetune openai-key clear` goes back to the deployment's."
    )


def _usable(deps: BotDeps) -> str:
    if deps.installations is None:
        raise UserError(
            "This deployment serves one workspace with its own OPENAI_API_KEY; nothing to set here."
        )
    if not deps.settings.openai_key_encryption_key:
        raise UserError(
            "Workspace keys are off: the operator must set OPENAI_KEY_ENCRYPTION_KEY first (see README)."
        )
    return deps.settings.openai_key_encryption_key


async def check_and_save(deps: BotDeps, team: str, user: str, text: str, *, timeout: float = 20.0) -> str:
    """Check `text` with OpenAI, then keep it encrypted for `team`; its fingerprint. The
    command and App Home's modal both set a key this way. Raises UserError, saving nothing."""
    secret = _usable(deps)
    try:
        key = openai_keys.check(text)
    except openai_keys.OpenAIKeyError as exc:
        raise UserError(str(exc)) from exc
    client = llm.create_openai(deps.settings, api_key=key)
    try:
        async with asyncio.timeout(timeout):
            await client.models.list()
    except openai.AuthenticationError as exc:
        raise UserError("OpenAI rejected that key (401). Nothing was saved.") from exc
    except (openai.OpenAIError, TimeoutError) as exc:
        raise UserError(
            f"Couldn't check the key with OpenAI ({type(exc).__name__}). Nothing was saved."
        ) from exc
    finally:
        await client.close()
    mark = await openai_keys.save(deps.core.store, team, key, secret=secret)
    workspaces.forget(deps.workspace_cache, team)
    await audit.record(deps.core.store, team, user=user, action="openai-key set", allowed=True, detail=mark)
    return mark
