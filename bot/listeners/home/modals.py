"""App Home's buttons and the modals they open: set a channel's persona (anyone in that
channel, like `/persona <name>` there), create a persona or add a schema (admins).

Each submission is checked inside the modal (`response_action: errors`) before it
closes; admin checks run again on submit (a button is no credential) and are audited.
After a change the clicker's Home tab is published again.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial

from redis.exceptions import RedisError
from slack_sdk.errors import SlackApiError

from bot import blocks, home_view, messages, visibility
from bot.auth import check_admin
from bot.deps import BotDeps
from bot.listeners.home.publish import publish
from bot.listeners.shortcuts.ask import picker_names
from core import personas, schemas
from core.personas import Choice, PersonaError

log = logging.getLogger(__name__)


def _ids(body: dict, deps: BotDeps) -> tuple[str, str]:
    team = (
        (body.get("team") or {}).get("id", "") or (body.get("user") or {}).get("team_id", "") or deps.team_id
    )
    return team, (body.get("user") or {}).get("id", "")


def _value(view: dict, block: str, key: str = "value") -> str:
    element = (view.get("state", {}).get("values", {}).get(block) or {}).get("value") or {}
    if key == "selected_option":
        return (element.get("selected_option") or {}).get("value") or ""
    return element.get(key) or ""


async def _refused(deps: BotDeps, team: str, user: str, action: str) -> str | None:
    """The admin check for a Home button: private to the clicker, so ADMIN_CHANNEL_IDS
    (which keeps admin output in chosen channels) doesn't apply."""
    return await check_admin(deps, team=team, user=user, channel=None, action=action)


async def handle_set_channel_persona(ack, body: dict, client, deps: BotDeps) -> None:
    await ack()
    team, _ = _ids(body, deps)
    names = await picker_names(deps, team)
    await client.views_open(trigger_id=body["trigger_id"], view=home_view.channel_persona_modal(names))


async def handle_channel_persona_submission(ack, body: dict, view: dict, deps: BotDeps) -> None:
    team, user = _ids(body, deps)
    channel = _value(view, "channel", "selected_conversation")
    name = _value(view, "persona", "selected_option")
    try:
        domain = personas.check_domain(_value(view, "domain"))
    except PersonaError as exc:
        await ack(response_action="errors", errors={"domain": blocks.cut(str(exc), 150)})
        return
    try:
        persona = await personas.get(deps.core.store, team, name)
    except RedisError:
        await ack(response_action="errors", errors={"persona": messages.STORE_DOWN_SHORT})
        return
    if persona is None:
        await ack(
            response_action="errors", errors={"persona": "That persona no longer exists; pick another."}
        )
        return
    choice = Choice(persona.name, domain, by=user)
    try:
        # Slack wants the answer within 3 s; a huge channel's member list may take longer
        async with asyncio.timeout(CHECK_SECONDS):
            problem = await _channel_problem(deps, channel, user)
    except TimeoutError:
        await ack()  # checked after the modal closes; a refusal then comes by DM
        deps.tasks.spawn(_set_channel(deps, team, user, channel, choice, checked=False), name="home:set")
        return
    if problem:
        await ack(response_action="errors", errors={"channel": problem})
        return
    await ack()
    deps.tasks.spawn(_set_channel(deps, team, user, channel, choice), name="home:set")


CHECK_SECONDS = 2.0


async def _channel_problem(deps: BotDeps, channel: str, user: str) -> str | None:
    if not await visibility.is_member(deps, channel, user):
        return "You can only set the persona of a channel you're in."
    if not await visibility.bot_is_in(deps, channel):
        return "Invite @Threadwise to that channel first (/invite)."
    return None


async def _set_channel(
    deps: BotDeps, team: str, user: str, channel: str, choice: Choice, *, checked: bool = True
) -> None:
    if not checked and (problem := await _channel_problem(deps, channel, user)):
        await _tell(deps, user, f"I didn't set <#{channel}>'s persona: {problem}")
        return
    try:
        await personas.set_channel(deps.core.store, team, channel, choice)
    except RedisError:
        await _tell(deps, user, f"I couldn't set <#{channel}>'s persona. {messages.STORE_DOWN_SHORT}")
        return
    label = choice.name + (f" ({blocks.escape(choice.domain)})" if choice.domain else "")
    note = messages.PERSONA_SET_CHANNEL.format(user=user, persona=label)
    try:
        await deps.client.chat_postMessage(channel=channel, text=note, blocks=blocks.notice(note))
    except SlackApiError as exc:
        log.warning("Couldn't announce a channel persona: %s", exc.response.get("error"))
    await publish(deps, team, user)


def _admin_modal(action: str, make_view):
    """A Home button that opens an admin's modal: refused (by DM, audited) for others."""

    async def handler(ack, body: dict, client, deps: BotDeps) -> None:
        await ack()
        team, user = _ids(body, deps)
        if refusal := await _refused(deps, team, user, action):
            await _tell(deps, user, refusal)
            return
        await client.views_open(trigger_id=body["trigger_id"], view=make_view())

    return handler


handle_create_persona = _admin_modal("home: create persona", home_view.create_persona_modal)
handle_add_schema = _admin_modal("home: add schema", home_view.add_schema_modal)
handle_set_openai_key = _admin_modal("home: openai key", home_view.openai_key_modal)


Problems = dict[str, str] | None  # modal field -> what is wrong with it


async def _admin_submission(
    ack, body: dict, view: dict, deps: BotDeps, *, what: str, field: str, save
) -> None:
    """An admin modal's submission (`what` is audited): the admin check again, then `save`, whose
    problems are shown in their fields; then the clicker's Home tab is published again."""
    team, user = _ids(body, deps)
    if refusal := await _refused(deps, team, user, what):
        problems: Problems = {field: refusal}
    else:
        try:
            problems = await save(deps, team, user, view)
        except RedisError:
            problems = {field: messages.STORE_DOWN_SHORT}
    if problems:
        await ack(response_action="errors", errors={k: blocks.cut(v, 150) for k, v in problems.items()})
        return
    await ack()
    deps.tasks.spawn(publish(deps, team, user), name="home:publish")


async def _save_openai_key(deps: BotDeps, team: str, user: str, view: dict) -> Problems:
    """Checked with OpenAI within Slack's 3 s (else: try again); never echoed or audited."""
    from bot.errors import UserError
    from bot.listeners.commands.openai_key import check_and_save

    try:
        await check_and_save(deps, team, user, _value(view, "key"), timeout=2.0)
    except UserError as exc:
        return {"key": str(exc)}
    return None


async def _save_persona(deps: BotDeps, team: str, user: str, view: dict) -> Problems:
    try:
        persona = personas.make_custom(
            _value(view, "name"), _value(view, "prompt"), description=_value(view, "description")
        )
    except PersonaError as exc:
        return {"prompt" if "prompt" in str(exc) else "name": str(exc)}
    if not await personas.create(deps.core.store, team, persona):
        return {"name": f"`{persona.name}` exists already; pick another name."}
    return None


async def _save_schema(deps: BotDeps, team: str, user: str, view: dict) -> Problems:
    name = _value(view, "name")
    try:
        schemas.new_name(name)
    except ValueError as exc:
        return {"name": str(exc)}
    try:
        await schemas.save(deps.core.store, team, name, _value(view, "schema"))
    except ValueError as exc:
        return {"schema": str(exc)}
    return None


handle_openai_key_submission = partial(
    _admin_submission, what="home: openai key", field="key", save=_save_openai_key
)
handle_create_persona_submission = partial(
    _admin_submission, what="home: create persona", field="name", save=_save_persona
)
handle_add_schema_submission = partial(
    _admin_submission, what="home: add schema", field="name", save=_save_schema
)


async def _tell(deps: BotDeps, user: str, text: str) -> None:
    """A refusal for a Home click: by DM (a Home tab has no thread to answer in)."""
    try:
        channel = await visibility.dm_with(deps, user)
        await deps.client.chat_postMessage(channel=channel, text=text, blocks=blocks.notice(text))
    except SlackApiError as exc:
        log.warning("Couldn't tell a user about a refused Home action: %s", exc.response.get("error"))
