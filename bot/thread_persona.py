"""Switching one thread's persona: from `@Threadwise persona …` or the reply menu."""

from __future__ import annotations

from bot import blocks, messages
from bot.deps import BotDeps
from bot.errors import reported
from bot.turns import post_in_thread
from core import personas
from core.personas import Choice


async def switch_thread_persona(
    deps: BotDeps, *, team: str, channel: str, thread_ts: str, user: str, name: str, domain: str
) -> None:
    """Only the system message changes from here on; the history stays."""
    store = deps.core.store

    async def say(text: str) -> None:
        await post_in_thread(deps, channel, thread_ts, text)

    async with reported(say):
        persona = await personas.get(store, team, name)
        if persona is None:
            names = list(personas.BUILTINS) + [p.name for p in await personas.list_custom(store, team)]
            listed = ", ".join(f"`{n}`" for n in names)
            await say(messages.UNKNOWN_PERSONA.format(name=blocks.escape(name[:80])) + " " + listed)
            return
        domain = personas.check_domain(domain)
        choice = Choice(persona.name, domain, by=user)
        await personas.set_thread(
            store, team, channel, thread_ts, choice, ttl=deps.settings.conversation_ttl_seconds
        )
        label = persona.name + (f" ({blocks.escape(domain)})" if domain else "")
        await say(messages.PERSONA_SET_THREAD.format(user=user, persona=label))
