"""`/finetune …`: every subcommand is for admins, checked (and audited) first."""

from __future__ import annotations

from bot.commands import Registry, Subcommand
from bot.finetune import flows

FINETUNE = Registry(
    "/finetune",
    title="Fine-tuning (admins)",
    admin_only=True,
    escaped=True,  # should_escape is on, so #channel arrives as <#C…|name>
    entries=(
        Subcommand(
            ("dataset", "build"),
            flows.dataset_build,
            "`/finetune dataset build [#channel] [since=30d] [persona=…] [name=…]`: 👍-rated conversations",
        ),
        Subcommand(
            ("dataset", "import"),
            flows.dataset_import,
            "`/finetune dataset import <persona> [file link] [name=…]`: question/answer CSV or JSONL",
        ),
        Subcommand(("dataset", "list"), flows.dataset_list, "`/finetune dataset list`"),
        Subcommand(("validate",), flows.validate_file, "`/finetune validate [file link] [model=…] [name=…]`"),
        Subcommand(("start",), flows.start, "`/finetune start <dataset> [model=…] [epochs=auto] [suffix=…]`"),
        Subcommand(("list",), flows.job_list, "`/finetune list`: this workspace's jobs"),
        Subcommand(("status",), flows.status, "`/finetune status <job>`"),
        Subcommand(("cancel",), flows.cancel, "`/finetune cancel <job>`"),
        Subcommand(("events",), flows.events, "`/finetune events <job>`"),
        Subcommand(
            ("eval",), flows.evaluate, "`/finetune eval <job|model> [n=20] [judge=on|off] [dataset=…]`"
        ),
        Subcommand(("use",), flows.use, "`/finetune use <model> [persona=<name> | #channel]`"),
        Subcommand(("audit",), flows.audit_log, "`/finetune audit`: the admin audit log"),
    ),
)
