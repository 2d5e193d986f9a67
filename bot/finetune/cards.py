"""Block Kit for fine-tuning: pure functions from plain data to blocks."""

from __future__ import annotations

import time
from typing import Any

from bot.blocks import SECTION_LIMIT, Block, context_line, cut, cut_lines, escape
from core.finetune.jobs import JobStatus

# Confirm buttons carry the pending action's token; what a confirm does is decided by the
# pending action's kind (bot/listeners/actions/finetune.py), so these ids only say yes or no.
START_CONFIRM, START_DISMISS = "finetune_start_confirm", "finetune_start_cancel"
CANCEL_CONFIRM, CANCEL_DISMISS = "finetune_cancel_confirm", "finetune_cancel_keep"
OVERWRITE_CONFIRM, OVERWRITE_DISMISS = "finetune_overwrite_confirm", "finetune_overwrite_cancel"
CONFIRMS = frozenset({START_CONFIRM, CANCEL_CONFIRM, OVERWRITE_CONFIRM})
DISMISSALS = frozenset({START_DISMISS, CANCEL_DISMISS, OVERWRITE_DISMISS})

STATUS_EMOJI = {
    JobStatus.VALIDATING_FILES: ":mag:",
    JobStatus.QUEUED: ":hourglass_flowing_sand:",
    JobStatus.RUNNING: ":runner:",
    JobStatus.SUCCEEDED: ":white_check_mark:",
    JobStatus.FAILED: ":x:",
    JobStatus.CANCELLED: ":no_entry_sign:",
    JobStatus.PAUSED: ":double_vertical_bar:",
}


def _fmt_loss(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def _section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": cut(text, SECTION_LIMIT)}}


def _fields(pairs: list[tuple[str, str]]) -> Block:
    return {
        "type": "section",
        "fields": [{"type": "mrkdwn", "text": cut(f"*{k}*\n{v}", 2000)} for k, v in pairs[:10]],
    }


def _choice(block_id: str, token: str, *buttons: tuple[str, str, str | None]) -> Block:
    """A row of buttons that all carry the pending action's token."""
    elements = []
    for action_id, label, style in buttons:
        button: dict[str, Any] = {
            "type": "button",
            "action_id": action_id,
            "text": {"type": "plain_text", "text": label},
            "value": token,
        }
        if style:
            button["style"] = style
        elements.append(button)
    return {"type": "actions", "block_id": block_id, "elements": elements}


def job_card(job: Any, *, dataset: str, started_by: str) -> list[Block]:
    """The card updated in place as a job moves: status, progress, losses."""
    emoji = STATUS_EMOJI.get(job.status, ":grey_question:")
    progress = "—"
    if job.step is not None:
        progress = f"step {job.step}" + (f" / {job.total_steps}" if job.total_steps else "")
    pairs = [
        ("Status", f"{emoji} {job.status}"),
        ("Base model", f"`{job.model}`"),
        ("Dataset", f"`{dataset}`"),
        ("Progress", progress),
        ("Train loss", _fmt_loss(job.train_loss)),
        ("Valid loss", _fmt_loss(job.valid_loss)),
    ]
    if job.fine_tuned_model:
        pairs.append(("Fine-tuned model", f"`{job.fine_tuned_model}`"))
    out: list[Block] = [
        {"type": "header", "text": {"type": "plain_text", "text": "Fine-tuning job"}},
        _fields(pairs),
    ]
    if job.status == JobStatus.FAILED:
        out.append(
            _section(
                f":x: *Failed:* {escape(job.error_message or 'no reason given')} (`{escape(job.error_code or 'error')}`)"
            )
        )
    out.append(
        context_line(
            f"`{job.id}`", f"started by <@{started_by}>", f"updated <!date^{int(time.time())}^{{time}}|now>"
        )
    )
    return out


def job_summary(job: Any, *, rows: list[dict]) -> str:
    """The end-of-job message in the card's thread."""
    if job.status == JobStatus.SUCCEEDED:
        last = rows[-1] if rows else {}
        train = last.get("train_loss")
        valid = next((r.get("valid_loss") for r in reversed(rows) if r.get("valid_loss") is not None), None)
        duration = f"{job.duration_seconds / 60:.1f} min" if job.duration_seconds else "—"
        return (
            f":white_check_mark: *Fine-tuning finished.* Model: `{job.fine_tuned_model}`\n"
            f"Trained tokens: {job.trained_tokens or 0:,} · Duration: {duration} · "
            f"Final train loss: {_fmt_loss(train)} · Final valid loss: {_fmt_loss(valid)}\n"
            f"Try it with `/finetune eval {job.id}`, then `/finetune use {job.fine_tuned_model} persona=<name>`."
        )
    if job.status == JobStatus.FAILED:
        return f":x: *Fine-tuning failed:* {escape(job.error_message or 'no reason given')} (`{escape(job.error_code or 'error')}`)"
    return f":no_entry_sign: Fine-tuning job `{job.id}` was {job.status}."


def confirm_start(*, token: str, dataset: str, model: str, estimate: dict, summary: str) -> list[Block]:
    cost_text = estimate.get("cost_text", "unknown")
    return [
        _section(f"*Start fine-tuning* `{escape(model)}` on dataset `{dataset}`?"),
        _fields(
            [
                (
                    "Examples",
                    f"{estimate.get('n_examples', 0):,} (+{estimate.get('validation_examples') or 0} validation)",
                ),
                ("Epochs", str(estimate.get("epochs", "auto"))),
                ("Billed tokens (est.)", f"{estimate.get('billed_tokens', 0):,}"),
                ("Cost (est.)", cost_text),
            ]
        ),
        _section(summary),
        _choice(
            "finetune_confirm",
            token,
            (START_CONFIRM, "Confirm", "primary"),
            (START_DISMISS, "Cancel", None),
        ),
    ]


def confirm_cancel(*, token: str, job_id: str) -> list[Block]:
    return [
        _section(f"Cancel fine-tuning job `{job_id}`? Training so far is billed and can't be resumed."),
        _choice(
            "finetune_cancel",
            token,
            (CANCEL_CONFIRM, "Cancel the job", "danger"),
            (CANCEL_DISMISS, "Keep it running", None),
        ),
    ]


def confirm_overwrite(*, token: str, name: str, old: str, new: str) -> list[Block]:
    """Saving under a taken name asks first: the old dataset may be what a job was built on."""
    return [
        _section(f"A dataset called `{name}` already exists ({old}). Replace it with the new one ({new})?"),
        _choice(
            "finetune_overwrite",
            token,
            (OVERWRITE_CONFIRM, "Replace", "danger"),
            (OVERWRITE_DISMISS, "Keep the old one", None),
        ),
    ]


def validation_summary(report: Any, *, title: str) -> list[Block]:
    """The compact report: verdict, counts, the first problems; the full one is a file."""
    verdict = ":white_check_mark: Ready to train" if report.ok else ":x: Not ready: fix the errors below"
    problems = report.problems[:8]
    lines = [
        f"• {'❌' if p.severity == 'error' else '⚠️'} {'line ' + str(p.line) if p.line else 'dataset'}"
        f"{' (' + p.file + ')' if getattr(p, 'file', 'train') != 'train' else ''}: {cut(escape(p.message), 300)}"
        for p in problems
    ]
    more = len(report.problems) - len(problems)
    if more > 0:
        lines.append(f"…and {more} more in the attached report")
    cost = getattr(report, "estimated_cost", None)
    pairs = [
        ("Examples", f"{report.n_examples:,}"),
        ("Errors / warnings", f"{len(report.errors)} / {len(report.warnings)}"),
        ("Model", f"`{report.model}`"),
        ("Epochs (recommended)", str(report.epochs)),
        ("Billed tokens (est.)", f"{report.billed_tokens:,}"),
        ("Cost (est.)", f"${cost:,.2f}" if cost is not None else "—"),
    ]
    out = [_section(f"*{title}* — {verdict}"), _fields(pairs)]
    if lines:
        out.append(_section("\n".join(lines)))
    return out


def lines_block(title: str, lines: list[str], *, empty: str) -> list[Block]:
    """A titled list in one section; a long one is cut at a line and says how many are left."""
    body = cut_lines(lines, SECTION_LIMIT - len(title) - 4) if lines else empty
    return [_section(f"*{title}*\n{body}")]


def eval_side_by_side(headline: str, rows: list[Any], *, limit: int = 3) -> list[Block]:
    """The headline numbers, then the first examples with both answers next to each other."""
    out: list[Block] = [_section(headline)]
    for row in rows[:limit]:
        verdict = f" · judge: *{row.judge}*" if row.judge else ""
        out.append(_section(f"*Example {row.index + 1}:* {cut(escape(row.prompt_preview), 400)}{verdict}"))
        out.append(
            {
                "type": "section",
                "fields": [
                    {
                        "type": "mrkdwn",
                        "text": f"*Tuned* (F1 {row.tuned_f1:.2f})\n{cut(escape(row.tuned_answer), 900)}",
                    },
                    {
                        "type": "mrkdwn",
                        "text": f"*Base* (F1 {row.base_f1:.2f})\n{cut(escape(row.base_answer), 900)}",
                    },
                ],
            }
        )
    out.append(context_line("Full results for every example are in the attached file."))
    return out
