"""Pure predicates on event payloads: which messages the bot should look at."""

from __future__ import annotations

# Subtypes that still carry a person's new message. Edits, deletions, joins and the
# like never start a turn.
ANSWERABLE_SUBTYPES = {None, "file_share", "thread_broadcast"}


def is_from_a_person(event: dict, bot_user_id: str) -> bool:
    if event.get("bot_id") or event.get("bot_profile"):
        return False
    if event.get("subtype") not in ANSWERABLE_SUBTYPES:
        return False
    user = event.get("user")
    return bool(user) and user != bot_user_id
