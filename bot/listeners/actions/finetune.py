"""Confirm / Cancel buttons for starting and cancelling fine-tuning jobs, and replacing datasets."""

from __future__ import annotations

import logging

from openai import OpenAIError
from redis.exceptions import RedisError
from slack_sdk.errors import SlackApiError

from bot import messages
from bot.auth import check_admin
from bot.deps import BotDeps
from bot.finetune import flows
from bot.replies import ephemeral
from core import llm
from core.finetune import store as ft

log = logging.getLogger(__name__)


async def handle_finetune_button(ack, body: dict, respond, deps: BotDeps) -> None:
    await ack()
    deps.tasks.spawn(_run(deps, body, respond))


async def _run(deps: BotDeps, body: dict, respond) -> None:
    action = body["actions"][0]
    team, user = body["team"]["id"], body["user"]["id"]
    channel = (body.get("channel") or {}).get("id") or body.get("container", {}).get("channel_id", "")
    token = action["value"]

    async def say(text: str) -> None:
        await ephemeral(deps, respond, channel=channel, user=user, text=text)

    refusal = await check_admin(
        deps, team=team, user=user, channel=channel, action=action["action_id"], detail=token
    )
    if refusal:
        await say(refusal)
        return
    kind = action["action_id"]
    try:
        if kind == "finetune_start_confirm":
            await flows.confirm_start(deps, team=team, user=user, token=token, say=say)
        elif kind == "finetune_cancel_confirm":
            await flows.confirm_cancel(deps, team=team, user=user, token=token, say=say)
        elif kind == "finetune_overwrite_confirm":
            await flows.confirm_overwrite(deps, team=team, user=user, token=token, say=say)
        else:  # "Cancel" on a start, "Keep it running", "Keep the old one"
            await ft.take_pending(deps.core.store, team, token)
            if kind == "finetune_overwrite_cancel":
                await ft.drop_staged(deps.core.store, team, token)
            await say("OK, nothing was changed.")
    except RedisError:
        await say(
            messages.STORE_DOWN.replace("didn't answer and your message wasn't saved", "changed nothing")
        )
    except SlackApiError as exc:
        await say(
            f":warning: Slack refused the update ({exc.response.get('error')}). Check `/finetune list`."
        )
    except OpenAIError as exc:
        await say(messages.llm_error(llm.error_kind(exc)))
    except Exception:  # never silence: the admin hears that something broke
        log.exception("Fine-tuning button failed")
        await say(messages.COMMAND_FAILED)
