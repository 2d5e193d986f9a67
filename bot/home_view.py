"""App Home's Block Kit and its modals: small pure functions, tested on their output.

A Home tab holds at most 100 blocks; everything here is bounded (lists are cut with
"…and N more"), so 100 personas or 500 jobs still publish.
"""

from __future__ import annotations

from datetime import UTC, datetime

from bot import usage_report
from bot.blocks import (
    SECTION_LIMIT,
    Block,
    context_line,
    cut,
    cut_lines,
    escape,
    input_block,
    modal,
    options,
    section,
    text_input,
)
from core import personas
from core.home import Home

SET_CHANNEL_PERSONA = "home_set_channel_persona"
SET_OPENAI_KEY = "home_set_openai_key"
OPENAI_KEY_MODAL = "home_openai_key_modal"
CREATE_PERSONA = "home_create_persona"
ADD_SCHEMA = "home_add_schema"
CHANNEL_PERSONA_MODAL = "home_channel_persona_modal"
CREATE_PERSONA_MODAL = "home_create_persona_modal"
ADD_SCHEMA_MODAL = "home_add_schema_modal"
MAX_BLOCKS = 100
LISTED = 10  # jobs and datasets shown to admins

HOW_TO = (
    "• *Ask*: mention @Threadwise in a channel, send it a DM, or open it from the top bar. "
    "Each thread is one conversation, and it remembers it.\n"
    "• *Message menu* (⋯ on any message): _Ask Threadwise about this_, _Summarize thread_, "
    "_Extract JSON_.\n"
    "• `/persona [name [domain]]`: list personas, or set this channel's.\n"
    "• `/ask-json <schema> <question>`: an answer as JSON, checked against the schema.\n"
    "• `/usage`: your usage and its estimated cost."
)
ADMIN_HOW_TO = (
    "• `/finetune dataset build|validate`, `/finetune start|status|eval|use`: fine-tune on your team's best threads.\n"
    "• `/usage budget <USD>|off`, `/usage limit <turns>|off`, `/usage price …`: limits and prices.\n"
    "• `/persona create|edit|delete|optimize`, `/ask-json schema add|delete`."
)


def _header(text: str) -> Block:
    return {"type": "header", "text": {"type": "plain_text", "text": text[:150]}}


def _button(text: str, action_id: str, *, primary: bool = False) -> dict:
    button: dict = {"type": "button", "text": {"type": "plain_text", "text": text}, "action_id": action_id}
    if primary:
        button["style"] = "primary"
    return button


def _listed(title: str, lines: list[str], empty: str) -> Block:
    """One section of whole lines under `title`, cut with "…and N more" to fit."""
    if not lines:
        return section(f"*{title}*\n_{empty}_")
    return section(f"*{title}*\n" + cut_lines(lines, SECTION_LIMIT - len(title) - 10))


def _choice_text(choice: personas.Choice) -> str:
    return f"*{escape(choice.name)}*" + (f" ({escape(cut(choice.domain, 100))})" if choice.domain else "")


def personas_blocks(home: Home, shared_channels: list[str]) -> list[Block]:
    """The personas, and which is active in the channels this user shares with the bot."""
    default = _choice_text(home.workspace_choice) if home.workspace_choice else "*default* (built-in)"
    active = [f"Workspace default: {default}"]
    for channel in shared_channels:
        choice = home.channel_choices.get(channel)
        if choice:
            active.append(f"<#{channel}>: {_choice_text(choice)}")
    builtins = [f"• *{p.name}*: {escape(cut(personas.describe(p), 150))}" for p in personas.BUILTINS.values()]
    custom = [f"• *{escape(p.name)}*: {escape(cut(personas.describe(p), 150))}" for p in home.custom_personas]
    return [
        _header("Personas"),
        section(cut_lines(active, SECTION_LIMIT)),
        _listed("Built-in", builtins, ""),
        _listed("Your team's", custom, "None yet. Admins create them here or with /persona create."),
    ]


def schemas_block(home: Home) -> Block:
    lines = [
        f"• `{escape(s.name)}`" + (f": {escape(cut(s.description, 120))}" if s.description else "")
        for s in home.schemas
    ]
    return _listed("JSON schemas", lines, "None.")


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


def admin_blocks(home: Home) -> list[Block]:
    """Fine-tune jobs and datasets, and the workspace's usage and cost (30 days)."""
    jobs = [
        f"• `{escape(j.job_id)}` *{escape(j.status)}*: `{escape(j.model)}`"
        + (f" → `{escape(j.fine_tuned_model)}`" if j.fine_tuned_model else "")
        + f" from `{escape(j.dataset)}`, {_when(j.created_at)}"
        for j in home.jobs
    ]
    datasets = [
        f"• `{escape(d.name)}`: {d.examples} examples"
        + (f" (+{d.validation_examples} validation)" if d.validation_examples else "")
        + f", {_when(d.created_at)}"
        for d in home.datasets
    ]
    out: list[Block] = [
        {"type": "divider"},
        _header("Admin"),
        section(ADMIN_HOW_TO),
        _listed(f"Fine-tune jobs ({len(jobs)})", _more(jobs, LISTED), "None yet: `/finetune start`."),
        _listed(
            f"Datasets ({len(datasets)})", _more(datasets, LISTED), "None yet: `/finetune dataset build`."
        ),
    ]
    report = usage_report.workspace_report(home.workspace_usage, limits=home.limits, month=home.month)
    report[0] = _header("Workspace usage, last 30 days (UTC)")
    return out + report


def _more(lines: list[str], n: int) -> list[str]:
    return lines[:n] + ([f"_…and {len(lines) - n} more_"] if len(lines) > n else [])


def home_view(home: Home, *, admin: bool, shared_channels: list[str], own_keys: bool = False) -> dict:
    """The whole Home tab for one user; `own_keys`: workspaces may set their own OpenAI key."""
    buttons = [_button("Set a channel's persona", SET_CHANNEL_PERSONA, primary=True)]
    if admin:
        buttons += [_button("Create a persona", CREATE_PERSONA), _button("Add a JSON schema", ADD_SCHEMA)]
        if own_keys:
            buttons.append(_button("Set our OpenAI key", SET_OPENAI_KEY))
    out: list[Block] = [
        _header("Threadwise"),
        section("Your team's assistant in Slack, with memory, personas and JSON answers."),
        {"type": "actions", "block_id": "home_buttons", "elements": buttons},
        section(HOW_TO),
        *personas_blocks(home, shared_channels),
        schemas_block(home),
        _header("Your usage this month"),
        section(usage_report.summary_line(home.my_month)),
    ]
    if admin:
        out += admin_blocks(home)
    out.append(context_line(f"Updated {datetime.now(UTC).strftime('%Y-%m-%d %H:%M')} UTC"))
    return {"type": "home", "blocks": out[:MAX_BLOCKS]}


def unavailable_view(text: str) -> dict:
    return {"type": "home", "blocks": [_header("Threadwise"), section(text)]}


# -- modals -----------------------------------------------------------------------


def channel_persona_modal(names: list[str]) -> dict:
    return modal(
        CHANNEL_PERSONA_MODAL,
        "Set a channel's persona",
        "Set",
        [
            input_block(
                "channel",
                "Channel",
                {
                    "type": "conversations_select",
                    "action_id": "value",
                    "filter": {"include": ["public", "private"], "exclude_bot_users": True},
                },
                hint="New threads there use the persona. You and Threadwise must both be in it.",
            ),
            input_block(
                "persona",
                "Persona",
                {"type": "static_select", "action_id": "value", "options": options(names)},
                hint="Only the first 100 are listed; /persona <name> in the channel sets any."
                if len(names) > 100
                else "",
            ),
            input_block(
                "domain",
                "Domain (optional)",
                text_input("value", max_length=200, placeholder="e.g. tax law"),
                optional=True,
            ),
        ],
    )


def create_persona_modal() -> dict:
    return modal(
        CREATE_PERSONA_MODAL,
        "Create a persona",
        "Create",
        [
            input_block(
                "name",
                "Name",
                text_input("value", max_length=40, placeholder="e.g. support"),
                hint="Lowercase letters, digits and dashes.",
            ),
            input_block(
                "description", "One-line description", text_input("value", max_length=150), optional=True
            ),
            input_block("prompt", "System prompt", text_input("value", multiline=True, max_length=3000)),
        ],
    )


def add_schema_modal() -> dict:
    return modal(
        ADD_SCHEMA_MODAL,
        "Add a JSON schema",
        "Save",
        [
            input_block("name", "Name", text_input("value", max_length=40, placeholder="e.g. incident")),
            input_block(
                "schema",
                "JSON Schema",
                text_input(
                    "value",
                    multiline=True,
                    max_length=3000,
                    placeholder='{"type": "object", "properties": {…}}',
                ),
                hint="Made strict for OpenAI's structured outputs; you'll see what changed.",
            ),
        ],
    )


def openai_key_modal() -> dict:
    return modal(
        OPENAI_KEY_MODAL,
        "Our OpenAI key",
        "Check and save",
        [
            input_block(
                "key",
                "OpenAI API key",
                text_input("value", max_length=400, placeholder="sk-…"),
                hint="Checked with OpenAI first, then kept encrypted; used for this workspace's answers and fine-tuning.",
            )
        ],
    )
