"""`/finetune …`: every subcommand is for admins, checked (and audited) first."""

from __future__ import annotations

import logging

from openai import OpenAIError
from redis.exceptions import RedisError

from bot import messages
from bot.auth import check_admin
from bot.deps import BotDeps
from bot.finetune import flows
from bot.finetune.files import FileProblem
from bot.replies import ephemeral
from bot.visibility import NotAllowed
from core import llm
from core.finetune.jobs import FineTuneError

log = logging.getLogger(__name__)

USAGE = (
    "*Fine-tuning (admins):*\n"
    "• `/finetune dataset build [#channel] [since=30d] [persona=…] [name=…]` — 👍-rated conversations\n"
    "• `/finetune dataset import <persona> [file link] [name=…]` — question/answer CSV or JSONL\n"
    "• `/finetune dataset list` · `/finetune validate [file link] [model=…]`\n"
    "• `/finetune start <dataset> [model=…] [epochs=auto] [suffix=…]`\n"
    "• `/finetune list` · `status <job>` · `cancel <job>` · `events <job>`\n"
    "• `/finetune eval <job|model> [n=20] [judge=on|off] [dataset=…]` · `/finetune use <model> [persona=<name> | #channel]`\n"
    "• `/finetune audit`"
)

SUBCOMMANDS = {
    ("dataset", "build"): flows.dataset_build,
    ("dataset", "import"): flows.dataset_import,
    ("dataset", "list"): flows.dataset_list,
    ("validate", ""): flows.validate_file,
    ("start", ""): flows.start,
    ("list", ""): flows.job_list,
    ("status", ""): flows.status,
    ("cancel", ""): flows.cancel,
    ("events", ""): flows.events,
    ("eval", ""): flows.evaluate,
    ("use", ""): flows.use,
    ("audit", ""): flows.audit_log,
}


def route(text: str) -> tuple[tuple[str, str] | None, str]:
    words = text.split(maxsplit=2)
    if not words:
        return None, ""
    first = words[0].lower()
    if first == "dataset":
        second = words[1].lower() if len(words) > 1 else ""
        key = (first, second)
        return (key if key in SUBCOMMANDS else None), (words[2] if len(words) > 2 else "")
    key = (first, "")
    return (key if key in SUBCOMMANDS else None), text.split(maxsplit=1)[1] if len(words) > 1 else ""


async def handle_finetune(ack, command: dict, respond, deps: BotDeps) -> None:
    await ack()
    deps.tasks.spawn(run_finetune(deps, command, respond), name="finetune-command")


async def run_finetune(deps: BotDeps, command: dict, respond) -> None:
    team, channel, user = command["team_id"], command["channel_id"], command["user_id"]
    # should_escape is on for /finetune (so #channel arrives as <#C…|name>); undo the
    # HTML escaping it also applies
    text = (command.get("text") or "").strip().replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")

    async def say(msg: str, blocks_: list | None = None) -> None:
        await ephemeral(deps, respond, channel=channel, user=user, text=msg, blocks=blocks_)

    key, rest = route(text)
    action = "/finetune " + (" ".join(k for k in key if k) if key else (text.split() or ["help"])[0])
    try:
        refusal = await check_admin(
            deps, team=team, user=user, channel=channel, action=action, detail=rest[:200]
        )
        if refusal:
            await say(refusal)
            return
        if key is None:
            await say(USAGE)
            return
        await SUBCOMMANDS[key](flows.Ctx(deps, team, channel, user, say), rest)
    except (flows.UserError, FileProblem, NotAllowed, ValueError) as exc:
        await say(f":warning: {exc}")
    except FineTuneError as exc:
        await say(f":warning: {exc.message}")
    except RedisError:
        await say(
            messages.STORE_DOWN.replace("didn't answer and your message wasn't saved", "changed nothing")
        )
    except OpenAIError as exc:
        await say(messages.llm_error(llm.error_kind(exc)))
    except Exception:  # never silence: the admin hears that something broke
        log.exception("/finetune failed")
        await say(messages.COMMAND_FAILED)
