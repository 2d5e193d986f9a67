"""What each `/finetune` subcommand does, once the caller is known to be an admin."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time

from redis.exceptions import RedisError
from slack_sdk.errors import SlackApiError

from bot import blocks, visibility
from bot.blocks import cut
from bot.commands import Args, Ctx
from bot.errors import UserError
from bot.finetune import cards
from bot.finetune.files import download, find_file
from core import audit, feedback, personas, tokens
from core.finetune import datasets as ds_build
from core.finetune import jobs, service
from core.finetune import store as ft
from core.finetune.render import format_report
from core.finetune.validate import Report
from core.visibility import DIRECT, PRIVATE, PUBLIC, SourceRefused, select_sources

log = logging.getLogger(__name__)
_e = blocks.escape

_CHANNEL = re.compile(r"<#([CGD][A-Z0-9]+)(?:\|[^>]*)?>")
_SINCE = re.compile(r"^(\d+)([hdw])$")
DATASET_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")  # gpt-4.1-mini, ft:…:org:suffix:id


def _dataset_name(raw: str) -> str:
    name = re.sub(r"[^a-z0-9_.-]+", "-", raw.lower()).strip("-.")[:64] or f"dataset-{int(time.time())}"
    if not DATASET_NAME.match(name):
        raise UserError(f"`{_e(raw[:80])}` isn't a usable dataset name (letters, digits, `-`, `_`, `.`).")
    return name


def _model_name(raw: str) -> str:
    if not MODEL_NAME.match(raw):
        raise UserError(f"`{_e(raw[:80])}` isn't a model id (letters, digits, `.`, `-`, `_`, `:`).")
    return raw


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


def _since(raw: str) -> float:
    m = _SINCE.match(raw or "30d")
    if not m:
        raise UserError(f"`since={_e(raw[:40])}` should look like `30d`, `12h` or `2w`.")
    n, unit = int(m.group(1)), m.group(2)
    return time.time() - n * {"h": 3600, "d": 86400, "w": 7 * 86400}[unit]


async def _post_report(
    ctx: Ctx,
    report: Report,
    *,
    title: str,
    target: str,
    dataset_jsonl: str = "",
    dataset_name: str = "",
) -> None:
    """The compact summary, the full report (and dataset) as files, in `target`.

    `target` is the channel, or the admin's DM when the content comes from a private
    conversation the channel's members can't read (see bot/visibility.py).
    """
    client = ctx.deps.client
    summary = cards.validation_summary(report, title=title)
    try:
        posted = await client.chat_postMessage(channel=target, text=title, blocks=summary)
    except SlackApiError as exc:
        if exc.response.get("error") not in ("not_in_channel", "channel_not_found"):
            raise
        await ctx.say(
            title, summary + blocks.notice("_Invite me to this channel to get the full report as a file._")
        )
        return
    thread = posted["ts"]
    await client.files_upload_v2(
        channel=target,
        thread_ts=thread,
        filename=f"{dataset_name or 'dataset'}-report.txt",
        title="Full validation report",
        content=format_report(report),
    )
    if dataset_jsonl:
        await client.files_upload_v2(
            channel=target,
            thread_ts=thread,
            filename=f"{dataset_name}.jsonl",
            title=dataset_name,
            content=dataset_jsonl,
        )


async def _validate(
    ctx: Ctx, train: str, valid: str, model: str | None = None, epochs: int | None = None
) -> tuple[Report, list[tuple[int, dict]]]:
    """core's validation, with this bot's settings; a failed screen is a warning in Slack."""
    settings = ctx.deps.settings
    return await service.validate(
        ctx.deps.core.openai,
        train,
        valid,
        model=model or settings.finetune_base_model,
        epochs=epochs,
        prices=settings.finetune_prices or None,
        screen=settings.finetune_screening,
    )


# -- datasets ------------------------------------------------------------------------


async def _here_audience(ctx: Ctx) -> str:
    """Who may see content from a file shared here: everyone, or this channel's members."""
    return "" if await visibility.kind_of(ctx.deps, ctx.channel) == PUBLIC else ctx.channel


async def _save(ctx: Ctx, ds: ft.Dataset, train: str, valid: str) -> bool:
    """Save, or (when the name is taken) keep it aside and ask before overwriting."""
    try:
        await ft.save_dataset(ctx.deps.core.store, ctx.team, ds, train, valid)
        return True
    except ft.DatasetExists as exc:
        token = await ft.stage_dataset(ctx.deps.core.store, ctx.team, ds, train, valid)
        old = exc.existing
        await ctx.say(
            f"Replace dataset {ds.name}?",
            cards.confirm_overwrite(
                token=token,
                name=ds.name,
                old=f"{old.examples:,} examples, {blocks.escape(old.source)}, by <@{old.created_by}>",
                new=f"{ds.examples:,} examples",
            ),
        )
        return False


def _excluded_note(excluded: dict[str, int]) -> str:
    parts = []
    if excluded.get(PRIVATE):
        parts.append(f"{excluded[PRIVATE]} from private or shared channels")
    if excluded.get(DIRECT):
        parts.append(f"{excluded[DIRECT]} from DMs and group DMs")
    if not parts:
        return ""
    return (
        f" Left out {' and '.join(parts)} rated conversation(s): a private channel's conversations go "
        "into a dataset built in that channel, or named with `#channel` (the file then comes to your DM); "
        "DMs never do."
    )


async def dataset_build(ctx: Ctx, args: Args) -> None:
    """Rated-good conversations as chat-format JSONL, stored under a name and posted.

    Only conversations everyone who will see the result can already read go in: see
    core/visibility.select_sources.
    """
    positional, named = list(args.positional), args.named
    only_channel = next((m.group(1) for w in positional if (m := _CHANNEL.match(w))), None)
    since = _since(named.get("since", "30d"))
    persona_filter = named.get("persona", "").lower()
    name = _dataset_name(named.get("name") or f"conversations-{time.strftime('%Y%m%d-%H%M')}")
    store = ctx.deps.core.store
    convs = await feedback.rated_conversations(store, ctx.team, since=since, channel=only_channel)
    conv_channels = [c.split(":")[1] for c in convs]
    kinds = await visibility.kinds_of(ctx.deps, {*conv_channels, ctx.channel, *filter(None, [only_channel])})
    try:
        sources = select_sources(kinds, conv_channels, here=ctx.channel, named=only_channel)
    except SourceRefused as exc:
        raise UserError(str(exc)) from exc
    # Checked before any work: an admin may only take a private channel they can read.
    target = await visibility.destination(
        ctx.deps, audience=sources.audience, channel=ctx.channel, user=ctx.user
    )
    convs = [c for c in convs if c.split(":")[1] in sources.channels]
    examples = await service.examples_from_feedback(
        store,
        ctx.team,
        convs,
        persona=persona_filter,
        team_prompt=ctx.deps.settings.workspace_persona_prompt,
    )
    left_out = _excluded_note(sources.excluded)
    if not examples:
        scope = f" in <#{only_channel}>" if only_channel else ""
        raise UserError(
            f"No answers rated 👍 (and none 👎) since then{scope}. Ask people to rate good answers with 👍, "
            "or widen `since=`." + left_out
        )
    train, valid = await service.split_off_loop(examples)
    report, _ = await _validate(ctx, train, valid)
    ds = ft.Dataset(
        name,
        report.n_examples,
        report.validation_examples or 0,
        "conversations",
        ctx.user,
        persona=persona_filter,
        audience=sources.audience,
    )
    saved = await _save(ctx, ds, train, valid)
    await _post_report(
        ctx,
        report,
        title=f"Dataset `{name}` from {len(convs)} rated conversations",
        target=target,
        dataset_jsonl=train,
        dataset_name=name,
    )
    where = (
        " I sent it to you in a DM: it holds a private channel's conversations."
        if target != ctx.channel
        else ""
    )
    if saved:
        await ctx.say(
            f"Saved dataset `{name}` ({report.n_examples} examples). Start with `/finetune start {name}`."
            + where
            + left_out
        )
    elif where or left_out:
        await ctx.say(where.strip() + left_out)


async def dataset_import(ctx: Ctx, args: Args) -> None:
    """Question/answer pairs from an uploaded CSV or JSONL, with a persona's system message."""
    positional, named = list(args.positional), args.named
    if not positional:
        raise UserError("Usage: `/finetune dataset import <persona> [file link] [name=…]`")
    persona = await personas.get(ctx.deps.core.store, ctx.team, positional[0])
    if persona is None:
        raise UserError(
            f"I don't know a persona called `{blocks.escape(positional[0][:80])}`; see `/persona`."
        )
    file = await find_file(
        ctx.deps, channel=ctx.channel, link=" ".join(positional[1:]), extensions=(".csv", ".jsonl")
    )
    text = await download(ctx.deps, file)
    fmt = "csv" if file["name"].lower().endswith(".csv") else "jsonl"
    system = personas.system_prompt(persona, team_prompt=ctx.deps.settings.workspace_persona_prompt)
    examples, problems = await asyncio.to_thread(ds_build.qa_examples, text, fmt=fmt, system=system)
    file_name = blocks.escape(file["name"])
    if problems:
        listed = "\n".join(f"• {blocks.escape(p)}" for p in problems[:15])
        raise UserError(f"`{file_name}` has problems; nothing was stored:\n{listed}")
    name = _dataset_name(named.get("name") or file["name"].rsplit(".", 1)[0])
    train, valid = await service.split_off_loop(examples)
    report, _ = await _validate(ctx, train, valid)
    ds = ft.Dataset(
        name,
        report.n_examples,
        report.validation_examples or 0,
        f"qa:{file['name']}",
        ctx.user,
        persona.name,
        audience=await _here_audience(ctx),
    )
    saved = await _save(ctx, ds, train, valid)
    await _post_report(
        ctx,
        report,
        title=f"Dataset `{name}` from {file_name}",
        target=ctx.channel,
        dataset_jsonl=train,
        dataset_name=name,
    )
    if saved:
        await ctx.say(f"Saved dataset `{name}` ({report.n_examples} examples).")


async def validate_file(ctx: Ctx, args: Args) -> None:
    """Validate the latest .jsonl in the channel (or a link); nothing goes to OpenAI."""
    positional, named = list(args.positional), args.named
    file = await find_file(ctx.deps, channel=ctx.channel, link=" ".join(positional), extensions=(".jsonl",))
    text = await download(ctx.deps, file)
    model = _model_name(named.get("model") or ctx.deps.settings.finetune_base_model)
    report, usable = await _validate(ctx, text, "", model=model)
    name = _dataset_name(named.get("name") or file["name"].rsplit(".", 1)[0])
    file_name = blocks.escape(file["name"])
    saved = False
    if report.ok:
        train, valid = await service.split_off_loop([ex for _, ex in usable])
        ds = ft.Dataset(
            name,
            report.n_examples,
            0,
            f"file:{file['name']}",
            ctx.user,
            audience=await _here_audience(ctx),
        )
        saved = await _save(ctx, ds, train, valid)
    await _post_report(
        ctx, report, title=f"Validation of `{file_name}`", target=ctx.channel, dataset_name=name
    )
    if saved:
        await ctx.say(
            f"`{file_name}` is valid and saved as dataset `{name}`. Start with `/finetune start {name}`."
        )
    elif not report.ok:
        await ctx.say(
            f"`{file_name}` has {len(report.errors)} error(s); nothing was stored or uploaded. See the report."
        )


async def confirm_overwrite(ctx: Ctx, args: Args) -> None:
    """After "Replace": the staged dataset takes the name, in one step."""
    store = ctx.deps.core.store
    ds = await ft.commit_staged(store, ctx.team, args.named["token"], args.named)
    if ds is None:
        raise UserError(
            "This confirmation has expired or was already used; build or validate the dataset again."
        )
    await audit.record(
        store, ctx.team, user=ctx.user, action="finetune dataset replace", allowed=True, detail=ds.name
    )
    await ctx.say(
        f"Replaced dataset `{ds.name}` ({ds.examples} examples). Start with `/finetune start {ds.name}`."
    )


async def dataset_list(ctx: Ctx, args: Args) -> None:
    items = await ft.list_datasets(ctx.deps.core.store, ctx.team)
    lines = [
        f"• `{d.name}` — {d.examples} examples (+{d.validation_examples} validation), {_e(d.source)}, by <@{d.created_by}>"
        for d in items[:30]
    ]
    await ctx.say(
        "Datasets", cards.lines_block("Datasets", lines, empty="No datasets yet: `/finetune dataset build`.")
    )


# -- jobs ------------------------------------------------------------------------------


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
    model = _model_name(named.get("model") or ctx.deps.settings.finetune_base_model)
    epochs_raw = named.get("epochs", "auto")
    if epochs_raw != "auto" and not (epochs_raw.isdigit() and 1 <= int(epochs_raw) <= 25):
        raise UserError("`epochs` must be `auto` or a whole number from 1 to 25.")
    epochs = None if epochs_raw == "auto" else int(epochs_raw)
    suffix = named.get("suffix", "")
    if suffix and not re.match(r"^[a-zA-Z0-9_-]{1,64}$", suffix):
        raise UserError("`suffix` may hold letters, digits, `-` and `_` (up to 64).")
    report, _ = await _validate(ctx, train, valid, model=model, epochs=epochs)
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
    deps, team, user, say, pending = ctx.deps, ctx.team, ctx.user, ctx.say, args.named
    store = deps.core.store
    loaded = await ft.load_dataset(store, team, pending["dataset"])
    if loaded is None:
        await say(f"Dataset `{pending['dataset']}` no longer exists.")
        return
    ds, train, valid = loaded
    channel = pending["channel"]
    note = f"_Uploading `{ds.name}` and creating the job…_"
    try:
        card = await deps.client.chat_postMessage(channel=channel, text=note, blocks=blocks.notice(note))
    except SlackApiError as exc:
        await say(
            f":warning: I can't post the job card here ({exc.response.get('error')}); invite me and try again."
        )
        return
    try:
        view = await jobs.upload_and_create(
            deps.core.openai,
            train_jsonl=train.encode(),
            valid_jsonl=valid.encode() or None,
            model=pending["model"],
            epochs=pending["epochs"],
            suffix=pending["suffix"] or None,
            seed=service.SEED,
            metadata={"threadwise_dataset": ds.name[:64], "started_by": user},
            filename=f"{ds.name}.jsonl",
        )
    except jobs.FineTuneError as exc:
        text = f":x: *Fine-tuning didn't start.* {_e(exc.message)} The dataset `{ds.name}` is kept; try again later."
        await deps.client.chat_update(channel=channel, ts=card["ts"], text=text, blocks=blocks.notice(text))
        await audit.record(
            store, team, user=user, action="finetune start failed", allowed=True, detail=exc.message
        )
        return
    record = ft.JobRecord(view.id, team, channel, card["ts"], ds.name, view.model, user, status=view.status)
    try:
        await ft.save_job(store, record)
    except RedisError:
        await say(
            f":warning: Job `{view.id}` started, but I couldn't record it to watch it (Redis is unreachable). "
            f"Check it with `/finetune status {view.id}`."
        )
        raise
    await deps.client.chat_update(
        channel=channel,
        ts=card["ts"],
        text=f"Fine-tuning job {view.id}: {view.status}",
        blocks=cards.job_card(view, dataset=ds.name, started_by=user),
    )
    await audit.record(
        store, team, user=user, action="finetune start", allowed=True, detail=f"{view.id} {ds.name}"
    )


async def _job_or_error(ctx: Ctx, job_id: str) -> jobs.JobView:
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
    view = await _job_or_error(ctx, job_id)
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
    view = await _job_or_error(ctx, job_id)
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
    await _job_or_error(ctx, job_id)
    items = await jobs.events(ctx.deps.core.openai, job_id, limit=20)
    lines = [
        f"• <!date^{int(e['created_at'])}^{{date_short_pretty}} {{time}}|{e['created_at']}> [{_e(e['level'])}] {_e(e['message'])}"
        for e in items
    ]
    await ctx.say(
        f"Events of {job_id}",
        cards.lines_block(f"Events of `{job_id}` (newest first)", lines, empty="No events yet."),
    )


# -- compare and deploy ----------------------------------------------------------------


async def evaluate(ctx: Ctx, args: Args) -> None:
    from core.finetune import evaluate as ev

    positional, named = list(args.positional), args.named
    target = positional[0] if positional else ""
    n = int(named.get("n", "20")) if named.get("n", "20").isdigit() else 20
    store = ctx.deps.core.store
    records = await ft.list_job_records(store, ctx.team)
    if target.startswith("ftjob-"):
        view = await _job_or_error(ctx, target)
        if view.status != "succeeded" or not view.fine_tuned_model:
            raise UserError(f"Job `{target}` has no model yet (status: {view.status}).")
        tuned = view.fine_tuned_model
        record = next((r for r in records if r.job_id == target), None)
    else:
        if not target:
            raise UserError("Usage: `/finetune eval <job id | ft:model> [n=20] [judge=on]`")
        tuned = _model_name(target)
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
    summary = ev.eval_summary(report)
    text = (
        f"*Evaluation:* `{_e(tuned)}` vs base `{_e(base)}` on {report.n} held-out examples\n"
        f"Judge wins — tuned {report.tuned_wins} · base {report.base_wins} · ties {report.ties}\n"
        f"Token F1 vs reference — tuned {report.tuned_mean_f1:.3f} · base {report.base_mean_f1:.3f}"
        + (f"\n_{len(report.errors)} example(s) failed; see the file._" if report.errors else "")
    )
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
    model = _model_name(positional[0])
    record = await _own_model(ctx, model)
    try:
        await ctx.deps.core.openai.models.retrieve(model)
    except Exception as exc:
        raise UserError(
            f"OpenAI doesn't know the model `{_e(model[:120])}` (or I can't reach it): check the id."
        ) from exc
    info = tokens.model_info(model)
    store = ctx.deps.core.store
    channel = next((m.group(1) for w in positional[1:] if (m := _CHANNEL.match(w))), None)
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
