"""Reading what a member said to the bot: pure functions on message text."""

from __future__ import annotations

import re
from dataclasses import dataclass

_MENTION = re.compile(r"<@([A-Z0-9]+)(?:\|[^>]*)?>")


def mentions(text: str, user_id: str) -> bool:
    return any(m.group(1) == user_id for m in _MENTION.finditer(text or ""))


def strip_mention(text: str, user_id: str) -> str:
    """The message without the bot's own @-mention(s); other people's mentions stay."""
    cleaned = re.sub(rf"<@{re.escape(user_id)}(?:\|[^>]*)?>", "", text or "")
    return re.sub(r"[ \t]{2,}", " ", cleaned).strip()


@dataclass(frozen=True)
class Command:
    """A text command addressed to the bot in a thread: `@Threadwise reset`."""

    name: str
    args: str = ""


# Words that are a command only when said alone ("help me with X" is a question).
BARE_COMMANDS = {"reset", "help"}
ARG_COMMANDS = {"persona", "json"}


def parse_command(text: str) -> Command | None:
    """A known command word at the start of the (mention-stripped) text, or None."""
    head, _, rest = text.strip().partition(" ")
    word = head.lower().rstrip(":,.!")
    rest = rest.strip()
    if word in BARE_COMMANDS and not rest:
        return Command(word)
    if word in ARG_COMMANDS:
        return Command(word, rest)
    return None
