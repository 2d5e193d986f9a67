"""One way to write a slash command: a declarative registry per command, one argument
parser, one handler signature for subcommands and confirm buttons.

Each registry entry names its words (`dataset build`), its handler, whether it is for
admins, and its usage line; help and usage text are generated from the entries, so they
can't drift from what is routed. Admin checks (audited) and error reporting happen here,
once, for every entry.
"""

from __future__ import annotations

import html
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from bot.auth import check_admin
from bot.deps import BotDeps
from bot.errors import Say, reported
from bot.replies import ephemeral

_SMART_QUOTES = str.maketrans({"\u201c": '"', "\u201d": '"', "\u2018": "'", "\u2019": "'"})
_PAIR = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)=(?:"([^"]*)"|(\S*))')


@dataclass(frozen=True)
class Args:
    """A subcommand's arguments: words, `key=value` pairs, and the raw text after the path.

    Handlers that take free text (a prompt, an inline JSON schema) read `text`; the rest
    read `positional` and `named`. A confirm button's arguments are the pending action.
    """

    text: str = ""
    positional: tuple[str, ...] = ()
    named: dict[str, Any] = field(default_factory=dict)

    def first(self, default: str = "") -> str:
        return self.positional[0] if self.positional else default


def normalize(text: str) -> str:
    """Smart quotes (Slack's clients type them) become plain ones, once, for every command."""
    return text.translate(_SMART_QUOTES).strip()


def parse_args(text: str) -> Args:
    """`build <#C1|gen> since=7d name="my set"` -> positional words and named values."""
    text = normalize(text)
    named: dict[str, Any] = {}
    positional: list[str] = []
    pos = 0
    while pos < len(text):
        if text[pos].isspace():
            pos += 1
            continue
        m = _PAIR.match(text, pos)
        if m and (pos == 0 or text[pos - 1].isspace()):
            named[m.group(1).lower()] = m.group(2) if m.group(2) is not None else m.group(3)
            pos = m.end()
            continue
        end = pos
        while end < len(text) and not text[end].isspace():
            end += 1
        positional.append(text[pos:end])
        pos = end
    return Args(text=text, positional=tuple(positional), named=named)


@dataclass
class Ctx:
    """Who asked, where, and how to answer them (ephemerally)."""

    deps: BotDeps
    team: str
    channel: str
    user: str
    say: Say  # async (text, blocks=None): only the asker sees it
    request_id: str = ""  # the command's trigger_id: a retried request is answered once


Handler = Callable[[Ctx, Args], Awaitable[None]]


def button_context(deps: BotDeps, body: dict, respond) -> Ctx:
    """The Ctx of a click on one of our messages: the clicker, where, and how to answer them."""
    channel = (body.get("channel") or {}).get("id") or body.get("container", {}).get("channel_id", "")
    user = body["user"]["id"]

    async def say(text: str, blocks: list | None = None) -> None:
        await ephemeral(deps, respond, channel=channel, user=user, text=text, blocks=blocks)

    return Ctx(deps=deps, team=body["team"]["id"], channel=channel, user=user, say=say)


@dataclass(frozen=True)
class Subcommand:
    path: tuple[str, ...]  # () for the command's default (e.g. `/persona <name>`)
    handler: Handler
    usage: str  # shown in help, e.g. "`/persona delete <name>`: remove a custom persona"
    admin: bool = False
    secret: bool = False  # its text is a credential: never audited, logged or echoed


@dataclass(frozen=True)
class Registry:
    command: str  # "/persona"
    entries: tuple[Subcommand, ...]
    title: str = ""
    admin_only: bool = False  # every entry, help included, is for admins (checked first)
    escaped: bool = False  # the manifest's should_escape: undo Slack's &lt; &gt; &amp;
    on_empty: Subcommand | None = None  # the bare command (`/persona` lists); else help

    def match(self, text: str) -> tuple[Subcommand | None, str]:
        """The entry whose words start `text` (longest first), and the text after them.

        None means "show the usage": `help`, an empty command without `on_empty`, or
        words no entry (and no default) takes.
        """
        words = text.split()
        if not words:
            return self.on_empty, ""
        if words[0].lower() == "help":
            return None, ""
        for entry in sorted(self.entries, key=lambda e: -len(e.path)):
            n = len(entry.path)
            if n and [w.lower() for w in words[:n]] == list(entry.path):
                return entry, text.split(maxsplit=n)[n] if len(words) > n else ""
        default = next((e for e in self.entries if not e.path), None)
        return (default, text) if default and text else (None, text)

    def usage(self) -> str:
        lines = [f"*{self.title}*"] if self.title else []
        entries = [self.on_empty] if self.on_empty else []
        entries += list(self.entries)
        lines += [
            f"• {e.usage}" + (" _(admins)_" if e.admin and not self.admin_only else "") for e in entries
        ]
        return "\n".join(lines)

    def action(self, entry: Subcommand | None, text: str) -> str:
        """The name an attempt is audited under: `/finetune dataset build`."""
        words = entry.path if entry and entry.path else tuple((text.split() or ["help"])[:1])
        return " ".join((self.command, *words))


async def run(registry: Registry, deps: BotDeps, command: dict, respond) -> None:
    """Route one slash command: admin check (audited), then the handler, errors reported."""
    channel, user = command["channel_id"], command["user_id"]
    text = normalize(command.get("text") or "")
    if registry.escaped:
        text = html.unescape(text)

    async def say(message: str, blocks: list | None = None) -> None:
        await ephemeral(deps, respond, channel=channel, user=user, text=message, blocks=blocks)

    ctx = Ctx(
        deps=deps,
        team=command["team_id"],
        channel=channel,
        user=user,
        say=say,
        request_id=command.get("trigger_id", ""),
    )
    entry, rest = registry.match(text)
    async with reported(say):
        if (registry.admin_only or (entry and entry.admin)) and await _refused(
            ctx, registry, entry, text, rest
        ):
            return
        if entry is None:
            await say(registry.usage())
            return
        await entry.handler(ctx, parse_args(rest))


async def _refused(ctx: Ctx, registry: Registry, entry: Subcommand | None, text: str, rest: str) -> bool:
    refusal = await check_admin(
        ctx.deps,
        team=ctx.team,
        user=ctx.user,
        channel=ctx.channel,
        action=registry.action(entry, text),
        detail="" if entry is not None and entry.secret else rest[:200],
    )
    if refusal:
        await ctx.say(refusal)
    return refusal is not None


def handle(registry: Registry) -> Callable[..., Awaitable[None]]:
    """The Bolt listener for `registry`: ack at once, then run in a tracked task."""

    async def listener(ack, command: dict, respond, deps: BotDeps) -> None:
        await ack()
        deps.tasks.spawn(run(registry, deps, command, respond), name=registry.command)

    return listener
