"""`/finetune start|list|status|cancel|events`: jobs this workspace started."""

from __future__ import annotations

import logging
import re

from redis.exceptions import RedisError
from slack_sdk.errors import SlackApiError

from bot import blocks
from bot.commands import Args, Ctx
from bot.errors import UserError
from bot.finetune import cards
from bot.finetune.args import model_name
from bot.finetune.datasets import validate
from core import audit
from core.finetune import jobs, service
from core.finetune import store as ft

log = logging.getLogger(__name__)
_e = blocks.escape


async def start(ctx: Ctx, args: Args) -> None:
    positional, named = list(args.positional), args.named
    if not positional:
        raise UserError("Usage: `/finetune start <dataset> [model=…] [epochs=auto|N] [suffix=…]`")
    loaded = await ft.load_dataset(ctx.deps.core.store, ctx.team, positional[0])
    if loaded is None:
        raise UserError(
            f"There's no dataset called `{_e(positional[0][:80])}`; see `/finetune dataset list`."
        )
    ds, train, valid = loaded
    model = model_name(named.get("model") or ctx.deps.settings.finetune_base_model)
    epochs_raw = named.get("epochs", "auto")
    if epochs_raw != "auto" and not (epochs_raw.isdecimal() and 1 <= int(epochs_raw) <= 25):
        raise UserError("`epochs` must be `auto` or a whole number from 1 to 25.")
    epochs = None if epochs_raw == "auto" else int(epochs_raw)
    suffix = named.get("suffix", "")
    if suffix and not re.match(r"^[a-zA-Z0-9_-]{1,64}$", suffix):
        raise UserError("`suffix` may hold letters, digits, `-` and `_` (up to 64).")
    report, _ = await validate(ctx, train, valid, model=model, epochs=epochs)
    if not report.ok:
        reasons = "\n".join(f"• {p.message}" for p in report.errors[:10])
        raise UserError(f"Dataset `{ds.name}` can't be used for training:\n{reasons}")
    estimate = jobs.estimate(report)
    token = await ft.put_pending(
        ctx.deps.core.store,
        ctx.team,
        {
            "kind": "start",
            "dataset": ds.name,
            "model": model,
            "epochs": epochs,
            "suffix": suffix,
            "user": ctx.user,
            "channel": ctx.channel,
        },
    )
    warnings = "; ".join(p.message for p in report.warnings[:3]) or "No warnings."
    await ctx.say(
        f"Start fine-tuning on {ds.name}?",
        cards.confirm_start(
            token=token, dataset=ds.name, model=model, estimate=estimate, summary=warnings[:2900]
        ),
    )


async def confirm_start(ctx: Ctx, args: Args) -> None:
    """After Confirm: upload, create, and post the job card that the watcher keeps current."""
    pending, store = args.named, ctx.deps.core.store
    loaded = await ft.load_dataset(store, ctx.team, pending["dataset"])
    if loaded is None:
        raise UserError(f"Dataset `{pending['dataset']}` no longer exists.")
    ds, train, valid = loaded
    channel = pending["channel"]
    note = f"_Uploading `{ds.name}` and creating the job…_"
    try:
        card = await ctx.deps.client.chat_postMessage(channel=channel, text=note, blocks=blocks.notice(note))
    except SlackApiError as exc:
        raise UserError(
            f"I can't post the job card here ({exc.response.get('error')}); invite me and try again."
        ) from exc
    view = await _create_job(ctx, pending, ds.name, train, valid, card_ts=card["ts"])
    if view is None:
        return
    await _remember_job(ctx, view, channel=channel, card_ts=card["ts"], dataset=ds.name)
    await audit.record(
        store, ctx.team, user=ctx.user, action="finetune start", allowed=True, detail=f"{view.id} {ds.name}"
    )
    try:
        await ctx.deps.client.chat_update(
            channel=channel,
            ts=card["ts"],
            text=f"Fine-tuning job {view.id}: {view.status}",
            blocks=cards.job_card(view, dataset=ds.name, started_by=ctx.user),
        )
    except SlackApiError as exc:  # the job runs: never invite a second, paid, start
        raise UserError(
            f"Job `{view.id}` started, but I couldn't update its card ({exc.response.get('error')}). "
            f"Follow it with `/finetune status {view.id}`; don't start it again."
        ) from exc


async def _create_job(
    ctx: Ctx, pending: dict, dataset: str, train: str, valid: str, *, card_ts: str
) -> jobs.JobView | None:
    """Upload and create; a refusal shows on the card (the dataset is kept) and returns None."""
    try:
        return await jobs.upload_and_create(
            ctx.deps.core.openai,
            train_jsonl=train.encode(),
            valid_jsonl=valid.encode() or None,
            model=pending["model"],
            epochs=pending["epochs"],
            suffix=pending["suffix"] or None,
            seed=service.SEED,
            metadata={"threadwise_dataset": dataset[:64], "started_by": ctx.user},
            filename=f"{dataset}.jsonl",
        )
    except jobs.FineTuneError as exc:
        text = f":x: *Fine-tuning didn't start.* {_e(exc.message)} The dataset `{dataset}` is kept; try again later."
        channel = pending["channel"]
        await ctx.deps.client.chat_update(channel=channel, ts=card_ts, text=text, blocks=blocks.notice(text))
        await audit.record(
            ctx.deps.core.store,
            ctx.team,
            user=ctx.user,
            action="finetune start failed",
            allowed=True,
            detail=exc.message,
        )
        return None


async def _remember_job(ctx: Ctx, view: jobs.JobView, *, channel: str, card_ts: str, dataset: str) -> None:
    """Record the job so the watcher keeps its card current; if Redis is down, say how to follow it."""
    record = ft.JobRecord(
        job_id=view.id,
        team=ctx.team,
        channel=channel,
        card_ts=card_ts,
        dataset=dataset,
        model=view.model,
        created_by=ctx.user,
        status=view.status,
    )
    try:
        await ft.save_job(ctx.deps.core.store, record)
    except RedisError as exc:
        raise UserError(
            f"Job `{view.id}` started, but I couldn't record it to watch it (Redis is unreachable). "
            f"Check it with `/finetune status {view.id}`."
        ) from exc


async def job_or_error(ctx: Ctx, job_id: str) -> jobs.JobView:
    """A job this workspace started: another workspace's job (same OpenAI organisation) is
    answered exactly like one that doesn't exist, so its existence isn't revealed either."""
    if not job_id:
        raise UserError("Give a job id, e.g. `ftjob-abc123`; see `/finetune list`.")
    if await ft.load_job(ctx.deps.core.store, ctx.team, job_id) is None:
        raise UserError(
            f"`{blocks.escape(job_id[:80])}` isn't a job this workspace started; see `/finetune list`."
        )
    try:
        return await jobs.retrieve(ctx.deps.core.openai, job_id)
    except jobs.FineTuneError as exc:
        if exc.kind in ("model_not_found", "bad_request") or "not found" in exc.message.lower():
            raise UserError(f"There's no fine-tuning job `{job_id}`; see `/finetune list`.") from exc
        raise UserError(_e(exc.message)) from exc


async def job_list(ctx: Ctx, args: Args) -> None:
    records = await ft.list_job_records(ctx.deps.core.store, ctx.team)
    lines = [
        f"• `{r.job_id}` — {cards.STATUS_EMOJI.get(r.status, '')} {r.status} · `{r.dataset}` on `{r.model}`"
        + (f" → `{r.fine_tuned_model}`" if r.fine_tuned_model else "")
        for r in records[:25]
    ]
    await ctx.say(
        "Fine-tuning jobs",
        cards.lines_block("Fine-tuning jobs", lines, empty="No jobs yet: `/finetune start <dataset>`."),
    )


async def status(ctx: Ctx, args: Args) -> None:
    job_id = args.first()
    view = await job_or_error(ctx, job_id)
    record = await ft.load_job(ctx.deps.core.store, ctx.team, job_id)
    await ctx.say(
        f"Job {job_id}: {view.status}",
        cards.job_card(
            view,
            dataset=record.dataset if record else "—",
            started_by=record.created_by if record else ctx.user,
        ),
    )


async def cancel(ctx: Ctx, args: Args) -> None:
    job_id = args.first()
    view = await job_or_error(ctx, job_id)
    if view.terminal:
        raise UserError(f"Job `{job_id}` has already {view.status}.")
    token = await ft.put_pending(
        ctx.deps.core.store, ctx.team, {"kind": "cancel", "job_id": job_id, "user": ctx.user}
    )
    await ctx.say(f"Cancel {job_id}?", cards.confirm_cancel(token=token, job_id=job_id))


async def confirm_cancel(ctx: Ctx, args: Args) -> None:
    deps, team, user, say = ctx.deps, ctx.team, ctx.user, ctx.say
    view = await jobs.cancel(deps.core.openai, args.named["job_id"])
    await audit.record(
        deps.core.store, team, user=user, action="finetune cancel", allowed=True, detail=view.id
    )
    from bot.finetune.watcher import refresh

    await refresh(deps, team, view.id)
    await say(f"Job `{view.id}` is {view.status}.")


async def events(ctx: Ctx, args: Args) -> None:
    job_id = args.first()
    await job_or_error(ctx, job_id)
    items = await jobs.events(ctx.deps.core.openai, job_id, limit=20)
    lines = [
        f"• <!date^{int(e['created_at'])}^{{date_short_pretty}} {{time}}|{e['created_at']}> [{_e(e['level'])}] {_e(e['message'])}"
        for e in items
    ]
    await ctx.say(
        f"Events of {job_id}",
        cards.lines_block(f"Events of `{job_id}` (newest first)", lines, empty="No events yet."),
    )
