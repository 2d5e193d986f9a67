"""What went wrong, as the person who asked sees it: one mapper for commands and buttons.

Handlers raise; they never format an error themselves. `UserError` and its kinds carry a
message already written for Slack (our own markup, user text escaped). Errors from core
(persona, schema, fine-tuning) carry plain text, which is escaped here. Infrastructure
errors become the fixed sentences in bot/messages.py, and anything else is logged and
answered with an apology, so nobody is left without a reply.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from openai import BadRequestError, OpenAIError
from redis.exceptions import RedisError
from slack_sdk.errors import SlackApiError

from bot import messages
from bot.blocks import escape
from core import llm
from core.finetune.jobs import FineTuneError
from core.finetune.store import DatasetTooLarge
from core.personas import PersonaError
from core.schemas import SchemaProblem

log = logging.getLogger(__name__)

Say = Callable[..., Awaitable[None]]


class UserError(Exception):
    """Bad input or a refusal; the message is Slack-ready and shown as is."""


class FileProblem(UserError):
    """A file can't be found, trusted or read; the message says what to do."""


class NotAllowed(UserError):
    """The asker can't see what they asked for (a private conversation's content)."""


def user_text(exc: BaseException, *, unsaved: bool = False, json: bool = False) -> str:
    """The one sentence an error becomes, for whoever ran the command, clicked, or asked.

    `unsaved`: the error stopped a message of theirs from being stored (a question in a
    thread), so Redis being down means "send it again", not "nothing changed". `json`: a
    JSON answer, where the model service rejecting the request is about the user's schema.
    """
    if isinstance(exc, UserError):
        return f":warning: {exc}"
    if isinstance(exc, PersonaError | SchemaProblem | DatasetTooLarge):
        return f":warning: {escape(str(exc))}"
    if isinstance(exc, FineTuneError):
        return f":warning: {escape(exc.message)}"
    if isinstance(exc, RedisError):
        return messages.STORE_DOWN if unsaved else messages.STORE_DOWN_NOTHING_CHANGED
    if json and isinstance(exc, BadRequestError) and "schema" in str(exc).lower():
        return messages.SCHEMA_REJECTED.format(detail=escape(getattr(exc, "message", str(exc))[:500]))
    if isinstance(exc, OpenAIError):
        return messages.llm_error(llm.error_kind(exc))
    if isinstance(exc, SlackApiError):
        return messages.SLACK_REFUSED.format(error=escape(str(exc.response.get("error"))))
    log.exception("Command failed", exc_info=exc)
    return messages.COMMAND_FAILED


@contextlib.asynccontextmanager
async def reported(say: Say, *, unsaved: bool = False, json: bool = False) -> AsyncIterator[None]:
    """Run a command's or a button's work; whatever it raises is told to `say`'s reader."""
    try:
        yield
    except Exception as exc:  # the mapper decides; unknown errors are logged there
        await say(user_text(exc, unsaved=unsaved, json=json))
