"""`/finetune …`: every subcommand is for admins, checked (and audited) first."""

from __future__ import annotations

from bot.commands import Registry, Subcommand
from bot.finetune import datasets, deploy, jobs
from bot.listeners.commands import admins, openai_key

FINETUNE = Registry(
    "/finetune",
    title="Fine-tuning (admins)",
    admin_only=True,
    escaped=True,  # should_escape is on, so #channel arrives as <#C…|name>
    entries=(
        Subcommand(
            ("dataset", "build"),
            datasets.dataset_build,
            "`/finetune dataset build [#channel] [since=30d] [persona=…] [name=…]`: 👍-rated conversations",
        ),
        Subcommand(
            ("dataset", "import"),
            datasets.dataset_import,
            "`/finetune dataset import <persona> [file link] [name=…]`: question/answer CSV or JSONL",
        ),
        Subcommand(("dataset", "list"), datasets.dataset_list, "`/finetune dataset list`"),
        Subcommand(
            ("validate",), datasets.validate_file, "`/finetune validate [file link] [model=…] [name=…]`"
        ),
        Subcommand(("start",), jobs.start, "`/finetune start <dataset> [model=…] [epochs=auto] [suffix=…]`"),
        Subcommand(("list",), jobs.job_list, "`/finetune list`: this workspace's jobs"),
        Subcommand(("status",), jobs.status, "`/finetune status <job>`"),
        Subcommand(("cancel",), jobs.cancel, "`/finetune cancel <job>`"),
        Subcommand(("events",), jobs.events, "`/finetune events <job>`"),
        Subcommand(
            ("eval",), deploy.evaluate, "`/finetune eval <job|model> [n=20] [judge=on|off] [dataset=…]`"
        ),
        Subcommand(("use",), deploy.use, "`/finetune use <model> [persona=<name> | #channel]`"),
        Subcommand(("audit",), deploy.audit_log, "`/finetune audit`: the admin audit log"),
        Subcommand(("admins", "add"), admins.add, "`/finetune admins add @person`: name an admin"),
        Subcommand(("admins", "remove"), admins.remove, "`/finetune admins remove @person`"),
        Subcommand(("admins",), admins.listing, "`/finetune admins`: who is named an admin here"),
        Subcommand(
            ("openai-key",),
            openai_key.set_key,
            "`/finetune openai-key <sk-…>|clear`: this workspace's own OpenAI key (many-workspace installs)",
            secret=True,
        ),
    ),
)
