"""Switching one thread's persona: from `@Threadwise persona …` or the reply menu."""

from __future__ import annotations

from redis.exceptions import RedisError

from bot import blocks, messages
from bot.deps import BotDeps
from bot.turns import post_in_thread
from core import personas
from core.personas import Choice


async def switch_thread_persona(
    deps: BotDeps, *, team: str, channel: str, thread_ts: str, user: str, name: str, domain: str
) -> None:
    """Only the system message changes from here on; the history stays."""
    store = deps.core.store
    try:
        persona = await personas.get(store, team, name)
        if persona is None:
            names = list(personas.BUILTINS) + [p.name for p in await personas.list_custom(store, team)]
            await post_in_thread(
                deps,
                channel,
                thread_ts,
                messages.UNKNOWN_PERSONA.format(name=blocks.escape(name[:80]))
                + " "
                + ", ".join(f"`{n}`" for n in names),
            )
            return
        domain = personas.check_domain(domain)
        choice = Choice(persona.name, domain, by=user)
        await personas.set_thread(
            store, team, channel, thread_ts, choice, ttl=deps.settings.conversation_ttl_seconds
        )
    except personas.PersonaError as exc:
        await post_in_thread(deps, channel, thread_ts, blocks.escape(str(exc)))
        return
    except RedisError:
        await post_in_thread(deps, channel, thread_ts, messages.STORE_DOWN)
        return
    label = persona.name + (f" ({blocks.escape(domain)})" if domain else "")
    await post_in_thread(
        deps, channel, thread_ts, messages.PERSONA_SET_THREAD.format(user=user, persona=label)
    )
