"""`/ask-json <schema> <question>`, and (admins) `/ask-json schema add|list|delete`."""

from __future__ import annotations

import logging

from redis.exceptions import RedisError
from slack_sdk.errors import SlackApiError

from bot import blocks, messages
from bot.auth import check_admin
from bot.deps import BotDeps
from bot.json_answers import answer_in_channel, resolve_schema
from bot.replies import ephemeral
from core import schemas
from core.schemas import SchemaProblem

log = logging.getLogger(__name__)
# The question is posted in the channel above the answer; a section holds 3,000 characters.
MAX_QUESTION_CHARS = 2_000


async def handle_ask_json(ack, command: dict, respond, deps: BotDeps) -> None:
    await ack()
    deps.tasks.spawn(run_ask_json(deps, command, respond), name="ask-json")


async def run_ask_json(deps: BotDeps, command: dict, respond) -> None:
    team, channel, user = command["team_id"], command["channel_id"], command["user_id"]
    text = (command.get("text") or "").strip()

    async def say(msg: str, blocks_: list | None = None) -> None:
        await ephemeral(deps, respond, channel=channel, user=user, text=msg, blocks=blocks_)

    try:
        names = ", ".join(f"`{n}`" for n in schemas.BUILTINS)
        if not text or text.lower() == "help":
            await say(messages.ASK_JSON_USAGE.format(names=names))
            return
        if text.lower().startswith("schema ") or text.lower() == "schema":
            await manage_schemas(deps, team=team, channel=channel, user=user, text=text[6:].strip(), say=say)
            return
        schema_arg, question = schemas.split_schema_arg(text)
        schema = await resolve_schema(deps, team, schema_arg)
        if not question:
            await say(messages.EMPTY_QUESTION)
            return
        if len(question) > MAX_QUESTION_CHARS:
            await say(messages.QUESTION_TOO_LONG.format(n=len(question), limit=MAX_QUESTION_CHARS))
            return
        await answer_in_channel(
            deps,
            respond=respond,
            team=team,
            channel=channel,
            user=user,
            schema=schema,
            question=question,
            request_id=command.get("trigger_id", ""),
        )
    except SchemaProblem as exc:
        await say(f":warning: {blocks.escape(str(exc))}")
    except RedisError:
        await say(messages.STORE_DOWN)
    except SlackApiError as exc:
        await say(
            f":warning: Slack refused to show the answer ({exc.response.get('error')}). Please try again."
        )
    except Exception:  # never silence: the asker hears that something broke
        log.exception("/ask-json failed")
        await say(messages.COMMAND_FAILED)


async def manage_schemas(deps: BotDeps, *, team: str, channel: str, user: str, text: str, say) -> None:
    sub, _, rest = text.partition(" ")
    sub = sub.lower()
    store = deps.core.store
    if sub in ("", "list"):
        items = [(s.name, s.description, s.builtin) for s in await schemas.list_all(store, team)]
        await say("JSON schemas", blocks.schema_list(items))
        return
    if sub not in ("add", "delete"):
        await say(messages.ASK_JSON_USAGE.format(names=", ".join(f"`{n}`" for n in schemas.BUILTINS)))
        return
    refusal = await check_admin(
        deps, team=team, user=user, channel=channel, action=f"/ask-json schema {sub}", detail=rest[:200]
    )
    if refusal:
        await say(refusal)
        return
    name, _, body = rest.strip().partition(" ")
    if sub == "delete":
        if name.lower() in schemas.BUILTINS:
            await say(f":warning: `{name}` is built-in and can't be deleted.")
        elif await schemas.delete(store, team, name):
            await say(f"Deleted schema `{name}`.")
        else:
            await say(f":warning: There's no workspace schema called `{blocks.escape(name[:80])}`.")
        return
    if not body.strip():
        await say("Usage: `/ask-json schema add <name> <json schema>`")
        return
    saved = await schemas.save(store, team, name, body)
    note = f" Normalized for strict mode: {blocks.escape('; '.join(saved.notes))}." if saved.notes else ""
    await say(f"Saved schema `{saved.name}`.{note}")
