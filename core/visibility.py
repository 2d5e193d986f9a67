"""Who may see a conversation, and so where content built from it may be shown.

The rule: nothing the bot posts shows a conversation to anyone who could not already read
it. A public channel is readable by the whole workspace; a private channel, a DM or a
group DM only by its members. A dataset records its audience (the one non-public
conversation its content came from, or none), and every later post of its content is
checked against it. Kinds come from the chat platform (the bot side asks Slack); this
module only decides.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

PUBLIC, PRIVATE, DIRECT = "public", "private", "direct"
# Shared with another organisation (Slack Connect): some readers aren't workspace members,
# so it is treated like a private channel, as a source and as a destination.
SHARED = "shared"
# Datasets saved before audiences were recorded: where they came from is unknown, so
# their content is only ever shown to the admin asking, in a DM.
UNKNOWN_AUDIENCE = "?"


class SourceRefused(ValueError):
    """The named conversation can't be a dataset source; the message says why."""


@dataclass(frozen=True)
class Sources:
    """Which conversations a dataset may draw on, and who may then see the dataset."""

    channels: frozenset[str]
    audience: str = ""  # "" = anyone in the workspace; else the one conversation's members
    excluded: Counter = field(default_factory=Counter)  # kind -> conversations left out

    @property
    def private(self) -> bool:
        return bool(self.audience)


def select_sources(
    kinds: dict[str, str], conv_channels: list[str], *, here: str, named: str | None = None
) -> Sources:
    """Pick the sources a dataset built in `here` may use.

    `kinds` maps each channel to PUBLIC, PRIVATE or DIRECT; `conv_channels` holds the
    channel of every rated conversation (to count what was left out).
    - Named channel: only it. A DM or group DM is refused outright. A private channel
      makes the dataset private to that channel (the caller must deliver it to the
      admin's DM unless the command runs in that very channel, and check membership).
    - Nothing named: public channels, plus the conversations of `here` itself, whose
      members are exactly the people who will see the result. Everything else is left out
      and counted, so the admin knows why the dataset is smaller. In a shared channel,
      public channels are left out too: outsiders read it.
    """
    if named:
        kind = kinds.get(named, PRIVATE)
        if kind == DIRECT:
            raise SourceRefused(
                "Conversations in DMs and group DMs never go into datasets: only their members may read them."
            )
        audience = "" if kind == PUBLIC else named
        return Sources(frozenset({named}), audience)
    outsiders_here = kinds.get(here, PRIVATE) == SHARED
    allowed = {c for c, k in kinds.items() if (k == PUBLIC and not outsiders_here) or c == here}
    excluded = Counter(
        DIRECT if kinds.get(c, PRIVATE) == DIRECT else PRIVATE for c in conv_channels if c not in allowed
    )
    uses_here = here in conv_channels and kinds.get(here, PRIVATE) != PUBLIC
    return Sources(frozenset(allowed), here if uses_here else "", excluded)
