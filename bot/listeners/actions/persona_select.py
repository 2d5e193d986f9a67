"""The persona menu on a thread's first reply: switch that one thread."""

from __future__ import annotations

from bot.deps import BotDeps
from bot.thread_persona import switch_thread_persona


async def handle_persona_select(ack, body: dict, deps: BotDeps) -> None:
    await ack()
    message = body.get("message") or {}
    channel = (body.get("channel") or body.get("container") or {}).get("id") or body["container"][
        "channel_id"
    ]
    thread_ts = message.get("thread_ts") or body.get("container", {}).get("thread_ts") or message.get("ts")
    name = body["actions"][0]["selected_option"]["value"]
    deps.tasks.spawn(
        switch_thread_persona(
            deps,
            team=body["team"]["id"],
            channel=channel,
            thread_ts=thread_ts,
            user=body["user"]["id"],
            name=name,
            domain="",
        )
    )
