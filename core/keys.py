"""Every Redis key the app uses, in one place.

Keys of one conversation share the hash tag `{team:channel:thread}` and keys of one
workspace share `{team}`, so scripts and transactions stay inside one Redis Cluster slot.
Only core/ builds keys; bot/ goes through core's functions (tests/test_layering.py).
"""

from __future__ import annotations

from dataclasses import dataclass

DEDUPE_TTL_SECONDS = 24 * 3600  # Slack retries for ~5 minutes; a day is generous and cheap.


def conversation_id(team: str, channel: str, thread_ts: str) -> str:
    return f"{team}:{channel}:{thread_ts}"


@dataclass(frozen=True)
class ConversationKeys:
    """Keys of one conversation, all under its hash tag."""

    msgs: str  # messages, a list of JSON
    toks: str  # their cached token counts, a list parallel to `msgs`
    meta: str  # metadata hash: counters, usage, the thread's persona, the turn in progress
    queue: str  # turns waiting or in progress, oldest first (core/turn_queue.py)
    lease: str  # "owner:fence" of the process taking this thread's turns, with a TTL
    fence: str  # counter: each new lease holder gets the next number
    parked: str  # follow-ups that came before the thread's first turn, for a few seconds
    inbox: str  # events acked but not yet queued: event id -> {at, body} (core/turn_queue.py)


def conversation(prefix: str, conv_id: str) -> ConversationKeys:
    """Keys of one conversation: messages (JSON list), their cached token counts, metadata,
    and the turn queue with its lease."""
    base = f"{prefix}:c:{{{conv_id}}}"
    return ConversationKeys(
        msgs=f"{base}:msgs",
        toks=f"{base}:toks",
        meta=f"{base}:meta",
        queue=f"{base}:queue",
        lease=f"{base}:lease",
        fence=f"{base}:fence",
        parked=f"{base}:parked",
        inbox=f"{base}:inbox",
    )


def feedback(prefix: str, conv_id: str) -> str:
    """Ratings of a conversation's replies: reply ts -> {rating, user, at}."""
    return f"{prefix}:c:{{{conv_id}}}:feedback"


def seen(prefix: str, conv_id: str, marker: str) -> str:
    """A SET NX marker that makes a retried event or a doubly delivered message a no-op."""
    return f"{prefix}:c:{{{conv_id}}}:seen:{marker}"


@dataclass(frozen=True)
class WorkspaceKeys:
    """Workspace-level keys, all under the `{team}` hash tag."""

    personas: str  # custom personas: name -> definition
    channel_personas: str  # channel -> persona choice
    settings: str  # workspace persona choice and team prompt
    schemas: str  # custom JSON schemas: name -> schema
    audit: str  # admin actions, newest first
    feedback: str  # not written today: ratings live per conversation and in `rated`
    datasets: str  # dataset index: name -> metadata
    jobs: str  # fine-tuning jobs started here: job id -> record
    rated: str  # conversations with ratings, scored by time
    channel_models: str  # channel -> fine-tuned model (`/finetune use`)
    prices: str  # admins' model price overrides: model -> [input, cached, output] USD per 1M
    admins: str  # users made admins here: the installer, and `/finetune admins add`


def workspace(prefix: str, team: str) -> WorkspaceKeys:
    """Workspace-level keys: custom personas, channel choices, settings, schemas, audit."""
    base = f"{prefix}:w:{{{team}}}"
    return WorkspaceKeys(
        personas=f"{base}:personas",
        channel_personas=f"{base}:channel_personas",
        settings=f"{base}:settings",
        schemas=f"{base}:schemas",
        audit=f"{base}:audit",
        feedback=f"{base}:feedback",
        datasets=f"{base}:datasets",
        jobs=f"{base}:jobs",
        rated=f"{base}:rated",
        channel_models=f"{base}:channel_models",
        prices=f"{base}:prices",
        admins=f"{base}:admins",
    )


def dataset(prefix: str, team: str, name: str, part: str) -> str:
    """A stored dataset's JSONL, `part` "train" or "valid"."""
    return f"{prefix}:w:{{{team}}}:dataset:{name}:{part}"


def answer_thread(prefix: str, team: str, channel: str, ts: str) -> str:
    """The thread an answer of ours was posted in, by its message: a reaction names only
    the message, and this spares a conversations.replies call to find the thread."""
    return f"{prefix}:w:{{{team}}}:answer:{channel}:{ts}"


def rate_bucket(prefix: str, team: str, name: str) -> str:
    """A token bucket of one of Slack's per-workspace rate limits (core/rate_budget.py)."""
    return f"{prefix}:w:{{{team}}}:rate:{name}"


def usage_day(prefix: str, team: str, day: str, dim: str = "all") -> str:
    """One UTC day's token and cost counters: the workspace's (`metric -> count`), or by
    channel, persona, user or model (`<id>|<metric> -> count`), see core/usage.py."""
    return f"{prefix}:w:{{{team}}}:usage:d:{day}" + ("" if dim == "all" else f":{dim}")


def usage_month(prefix: str, team: str, month: str, dim: str = "all") -> str:
    """One UTC month's counters, the workspace's (the budget reads it) or by user."""
    return f"{prefix}:w:{{{team}}}:usage:m:{month}" + ("" if dim == "all" else f":{dim}")


def usage_counted(prefix: str, team: str, marker: str) -> str:
    """Set once a turn's usage is counted, so a retried write counts nothing twice."""
    return f"{prefix}:w:{{{team}}}:usage:once:{marker}"


def user_turns(prefix: str, team: str, user: str, hour: str) -> str:
    """How many turns a user started in one UTC hour (the per-user limit)."""
    return f"{prefix}:w:{{{team}}}:usage:h:{hour}:{user}"


def limit_notice(prefix: str, team: str, what: str) -> str:
    """Set when admins were told a limit was hit, so they are told once per period."""
    return f"{prefix}:w:{{{team}}}:usage:notice:{what}"


def pending(prefix: str, team: str, token: str) -> str:
    """An action awaiting an admin's Confirm click (fine-tune start, cancel)."""
    return f"{prefix}:w:{{{team}}}:pending:{token}"


@dataclass(frozen=True)
class InstallationKeys:
    """One installation's keys (core/installations.py), under the hash tag `{E-T}`."""

    bot: str  # the latest bot (token, ids, scopes) as JSON
    bots: str  # every bot saved: installed_at -> JSON (history)
    installer: str  # the latest installation as JSON
    installers: str  # every installation saved: "installed_at|user" -> JSON (history)
    users: str  # users with an installation of their own
    rotating: str  # held by the process refreshing this installation's token
    base: str

    def installer_of(self, user: str) -> str:
        """A user's latest installation ("" gives the prefix the delete script completes)."""
        return f"{self.base}:installer:{user}"


def installation(prefix: str, client_id: str, ids: str) -> InstallationKeys:
    """Keys of the installation of one workspace or org (`ids` is "E-T", see
    core/installations.py); a client id keeps two apps sharing one Redis apart."""
    base = f"{prefix}:inst:{client_id + ':' if client_id else ''}{{{ids}}}"
    return InstallationKeys(
        bot=f"{base}:bot",
        bots=f"{base}:bots",
        installer=f"{base}:installer",
        installers=f"{base}:installers",
        users=f"{base}:users",
        rotating=f"{base}:rotating",
        base=base,
    )


def team_placement(prefix: str, client_id: str, team: str) -> str:
    """The Enterprise Grid installation a workspace's events are authorized by."""
    return f"{prefix}:inst:{client_id + ':' if client_id else ''}team:{{{team}}}"


def oauth_state(prefix: str, state: str) -> str:
    """An OAuth `state` issued for an install, consumed once (core/installations.py)."""
    return f"{prefix}:oauth:state:{state}"


def forget_queue(prefix: str) -> str:
    """Uninstalled workspaces whose data is to be deleted: "E-T ids" -> when (core/workspace_data.py)."""
    return f"{prefix}:forget"


def workspace_patterns(prefix: str, team: str) -> list[str]:
    """SCAN patterns matching every key of one workspace: its workspace keys, and its
    conversations (whose hash tags start with the team id)."""
    return [f"{prefix}:w:{{{team}}}:*", f"{prefix}:c:{{{team}:*"]


def open_turns(prefix: str) -> str:
    """Conversations that may hold queued turns (conv id -> when to look at it next), across
    workspaces. Any process scans it for turns whose lease holder died (core/turn_queue.py)."""
    return f"{prefix}:turns:open"


def recovery_scan(prefix: str) -> str:
    """Held for one scan interval by the process scanning `open_turns`, so scans take turns."""
    return f"{prefix}:turns:scan"


def finetune_jobs(prefix: str) -> str:
    """Index of every watched fine-tuning job (job id -> team), across workspaces."""
    return f"{prefix}:ft:jobs"


def finetune_lease(prefix: str, job_id: str) -> str:
    """Which process watches `job_id` (polls it and keeps its card current)."""
    return f"{prefix}:ft:lease:{job_id}"


def finetune_refresh_lock(prefix: str, job_id: str) -> str:
    """Held while one process refreshes `job_id`, so refreshes of it take turns."""
    return f"{finetune_lease(prefix, job_id)}:refresh"


def optimize_run(prefix: str, team: str, token: str) -> str:
    """Prompt variants awaiting an admin's Adopt click (short-lived)."""
    return f"{prefix}:w:{{{team}}}:optimize:{token}"
