"""`/finetune eval|use|audit`: compare a tuned model with its base, put it to work, and the audit log."""

from __future__ import annotations

import asyncio
import json
import logging

from bot import blocks, visibility
from bot.blocks import cut
from bot.commands import Args, Ctx
from bot.errors import UserError
from bot.finetune import cards
from bot.finetune.args import channel_in, model_name
from bot.finetune.jobs import job_or_error
from core import audit, personas, tokens, usage
from core.finetune import service
from core.finetune import store as ft
from core.finetune.jobs import JobStatus

log = logging.getLogger(__name__)
_e = blocks.escape


async def _own_model(ctx: Ctx, model: str) -> ft.JobRecord | None:
    """The job that made `model`; a fine-tuned model another workspace made is refused.

    Models of one OpenAI organisation are visible to every workspace sharing the key, but
    a tuned model may repeat what its (maybe private) training conversations said.
    """
    records = await ft.list_job_records(ctx.deps.core.store, ctx.team)
    record = next((r for r in records if r.fine_tuned_model == model), None)
    if model.startswith("ft:") and record is None:
        raise UserError(f"`{_e(model)}` isn't a model this workspace trained; see `/finetune list`.")
    return record


def _eval_text(tuned: str, base: str, report) -> str:
    return (
        f"*Evaluation:* `{_e(tuned)}` vs base `{_e(base)}` on {report.n} held-out examples\n"
        f"Judge wins — tuned {report.tuned_wins} · base {report.base_wins} · ties {report.ties}\n"
        f"Token F1 vs reference — tuned {report.tuned_mean_f1:.3f} · base {report.base_mean_f1:.3f}"
        + (f"\n_{len(report.errors)} example(s) failed; see the file._" if report.errors else "")
    )


async def evaluate(ctx: Ctx, args: Args) -> None:
    from core.finetune import evaluate as ev

    positional, named = list(args.positional), args.named
    target = positional[0] if positional else ""
    n = int(named.get("n", "20")) if named.get("n", "20").isdecimal() else 20
    store = ctx.deps.core.store
    records = await ft.list_job_records(store, ctx.team)
    if target.startswith("ftjob-"):
        view = await job_or_error(ctx, target)
        if view.status != JobStatus.SUCCEEDED or not view.fine_tuned_model:
            raise UserError(f"Job `{target}` has no model yet (status: {view.status}).")
        tuned = view.fine_tuned_model
        record = next((r for r in records if r.job_id == target), None)
    else:
        if not target:
            raise UserError("Usage: `/finetune eval <job id | ft:model> [n=20] [judge=on]`")
        tuned = model_name(target)
        record = await _own_model(ctx, tuned)
    dataset_name = named.get("dataset") or (record.dataset if record else "")
    loaded = await ft.load_dataset(store, ctx.team, dataset_name) if dataset_name else None
    if loaded is None:
        raise UserError("I don't know which held-out examples to use; add `dataset=<name>`.")
    dataset, train, valid = loaded
    # Held-out prompts and answers are the dataset's content: shown only where its source may be.
    target = await visibility.destination(
        ctx.deps, audience=dataset.audience, channel=ctx.channel, user=ctx.user
    )
    held_out = await asyncio.to_thread(service.held_out, valid or train)
    base = tokens.base_model(tuned)
    judge = ctx.deps.settings.openai_model if named.get("judge", "on") != "off" else None
    await ctx.say(
        f"_Comparing `{_e(tuned)}` with `{_e(base)}` on {min(n, len(held_out))} held-out examples…_"
    )
    report = await ev.compare(
        ctx.deps.core.openai, tuned=tuned, base=base, examples=held_out, n=n, judge_model=judge
    )
    await usage.record_calls(
        store,
        team=ctx.team,
        channel=ctx.channel,
        user=ctx.user,
        purpose="(fine-tune eval)",
        spent=report.spent,
    )
    summary = ev.eval_summary(report)
    text = _eval_text(tuned, base, report)
    posted = await ctx.deps.client.chat_postMessage(
        channel=target, text=text, blocks=cards.eval_side_by_side(text, report.rows)
    )
    if target != ctx.channel:
        await ctx.say("The results hold a private channel's conversations, so I sent them to you in a DM.")
    await ctx.deps.client.files_upload_v2(
        channel=target,
        thread_ts=posted["ts"],
        filename="evaluation.txt",
        title="Full evaluation",
        content=ev.format_eval(report),
    )
    await audit.record(
        store, ctx.team, user=ctx.user, action="finetune eval", allowed=True, detail=json.dumps(summary)[:300]
    )


async def use(ctx: Ctx, args: Args) -> None:
    """Point a persona or a channel at a model (context and encoding resolve via its base)."""
    positional, named = list(args.positional), args.named
    if not positional:
        raise UserError("Usage: `/finetune use <model> [persona=<name> | #channel]`")
    model = model_name(positional[0])
    record = await _own_model(ctx, model)
    try:
        await ctx.deps.core.openai.models.retrieve(model)
    except Exception as exc:
        raise UserError(
            f"OpenAI doesn't know the model `{_e(model[:120])}` (or I can't reach it): check the id."
        ) from exc
    info = tokens.model_info(model)
    store = ctx.deps.core.store
    channel = channel_in(positional[1:])
    if "persona" in named:
        persona = await personas.get(store, ctx.team, named["persona"])
        if persona is None:
            raise UserError(f"I don't know a persona called `{_e(named['persona'][:80])}`.")
        if persona.builtin:
            raise UserError(f"`{persona.name}` is built-in; create a custom persona to give it a model.")
        updated = personas.make_custom(
            persona.name,
            persona.prompt,
            description=persona.description,
            model=model,
            temperature=persona.temperature,
            constraints=persona.constraints,
        )
        await personas.replace(store, ctx.team, updated)
        where = f"persona *{persona.name}*"
    else:
        channel = channel or ctx.channel
        await personas.set_channel_model(store, ctx.team, channel, model)
        where = f"<#{channel}>"
    await ctx.say(
        f"{where} now uses `{_e(model)}` (base `{info.base}`, {info.encoding}, {info.context_window:,}-token context)."
        + await _training_warning(ctx, record)
    )


async def _training_warning(ctx: Ctx, record: ft.JobRecord | None) -> str:
    """A model trained on a private conversation may repeat it wherever it answers: say so."""
    loaded = await ft.load_dataset(ctx.deps.core.store, ctx.team, record.dataset) if record else None
    audience = loaded[0].audience if loaded else ""
    if not audience:
        return ""
    source = {"?": "a dataset of unknown origin"}.get(audience) or (
        "a DM" if audience.startswith("D") else f"<#{audience}>"
    )
    return (
        f"\n:warning: It was trained on conversations from {source}. "
        "It may repeat them to anyone it answers here."
    )


async def audit_log(ctx: Ctx, args: Args) -> None:
    entries = await audit.recent(ctx.deps.core.store, ctx.team, 25)
    lines = [
        f"• <!date^{int(e['at'])}^{{date_short}} {{time}}|{e['at']}> <@{e['user']}> "
        f"{'✅' if e['allowed'] else '⛔'} `{_e(e['action'])}` {_e(cut(e.get('detail', ''), 80))}"
        for e in entries
    ]
    await ctx.say(
        "Audit log", cards.lines_block("Admin audit log (newest first)", lines, empty="Nothing yet.")
    )
