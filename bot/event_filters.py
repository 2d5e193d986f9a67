"""Pure predicates on event payloads: which messages the bot should look at."""

from __future__ import annotations

from bot import mentions

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


def may_start_turn(event: dict, bot_user_id: str) -> bool:
    """A mention, a DM, or a reply in a thread (ours or not: only Redis knows): the events
    the bot may answer, and so must not lose once acked (bot/intake.py)."""
    if event.get("type") not in ("app_mention", "message") or not is_from_a_person(event, bot_user_id):
        return False
    if event["type"] == "app_mention" or event.get("channel_type") == "im":
        return True
    return bool(event.get("thread_ts")) and not mentions.mentions(event.get("text", ""), bot_user_id)
