"""The "Extract JSON" message shortcut: a schema picked or pasted in a modal, and the
validated JSON posted in the message's thread (as `@Threadwise json` would).

The schema is checked inside the modal (`response_action: errors`): an unknown name, or
pasted JSON that isn't a usable schema, is fixed there, before anything is queued.
"""

from __future__ import annotations

import json

from bot import blocks, visibility
from bot.deps import BotDeps
from bot.errors import UserError, user_text
from bot.json_answers import answer_in_thread, resolve_schema
from bot.listeners.shortcuts.ask import request_ts
from core import schemas
from core.conversations import Incoming

EXTRACT_JSON = "extract_json"
EXTRACT_MODAL = "extract_modal"


def extract_modal(*, names: list[str], metadata: dict) -> dict:
    """The modal (pure): a named schema, or a pasted one, and an optional instruction."""
    menu = {"type": "static_select", "action_id": "name", "options": blocks.options(names)}
    return blocks.modal(
        EXTRACT_MODAL,
        "Extract JSON",
        "Extract",
        [
            blocks.input_block("named", "Schema", menu, optional=True),
            blocks.input_block(
                "pasted",
                "…or paste a JSON schema",
                blocks.text_input("schema", multiline=True, max_length=3000),
                optional=True,
            ),
            blocks.input_block(
                "question",
                "What to extract (optional)",
                blocks.text_input("text", max_length=1000),
                optional=True,
            ),
        ],
        metadata,
    )


async def handle_extract_shortcut(ack, body: dict, client, deps: BotDeps) -> None:
    await ack()
    message = body.get("message") or {}
    team = (body.get("team") or {}).get("id", "") or deps.team_id
    metadata = {
        "channel": (body.get("channel") or {}).get("id", ""),
        "thread_ts": message.get("thread_ts") or message.get("ts", ""),
    }
    names = [s.name for s in await schemas.list_all(deps.core.store, team)]
    await client.views_open(trigger_id=body["trigger_id"], view=extract_modal(names=names, metadata=metadata))


def _value(values: dict, block: str, action: str, key: str = "value") -> str:
    element = (values.get(block) or {}).get(action) or {}
    if key == "selected":
        return (element.get("selected_option") or {}).get("value") or ""
    return element.get("value") or ""


async def handle_extract_submission(ack, body: dict, view: dict, deps: BotDeps) -> None:
    values = view.get("state", {}).get("values", {})
    named, pasted = _value(values, "named", "name", "selected"), _value(values, "pasted", "schema").strip()
    question = _value(values, "question", "text").strip()
    team = (body.get("team") or {}).get("id", "") or deps.team_id
    if bool(named) == bool(pasted):
        await ack(response_action="errors", errors={"named": "Pick a schema, or paste one (not both)."})
        return
    try:
        schema = await resolve_schema(deps, team, pasted or named)
    except (UserError, ValueError) as exc:
        field = "pasted" if pasted else "named"
        await ack(response_action="errors", errors={field: blocks.cut(user_text(exc, json=True), 150)})
        return
    await ack()
    metadata = json.loads(view.get("private_metadata") or "{}")
    user = (body.get("user") or {}).get("id", "")
    deps.tasks.spawn(_extract(deps, team, user, schema.name if not pasted else pasted, question, metadata))


async def _extract(
    deps: BotDeps, team: str, user: str, schema_arg: str, question: str, metadata: dict
) -> None:
    channel, thread_ts = metadata.get("channel", ""), metadata.get("thread_ts", "")
    if not channel or not thread_ts:
        return
    if not await visibility.bot_is_in(deps, channel):
        dm = await visibility.dm_with(deps, user)
        note = f"I'm not in <#{channel}>, so I couldn't extract JSON from that thread. Invite me there first."
        await deps.client.chat_postMessage(channel=dm, text=note, blocks=blocks.notice(note))
        return
    ts = request_ts()
    incoming = Incoming(team, channel, thread_ts, user, "", ts, event_id=f"extract:{ts}")
    await answer_in_thread(
        deps, incoming, schema_arg, question, joined=not channel.startswith("D"), accepted=False
    )
