"""`/finetune dataset …` and `validate`: datasets built, imported, checked and saved.

What they show goes only where everyone can already read its source (bot/visibility.py)."""

from __future__ import annotations

import asyncio
import logging
import time

from slack_sdk.errors import SlackApiError

from bot import blocks, messages, visibility
from bot.commands import Args, Ctx
from bot.errors import UserError
from bot.finetune import cards
from bot.finetune.args import channel_in, dataset_name, model_name, since_time
from bot.finetune.files import download, find_file
from core import audit, feedback, personas
from core.finetune import datasets as ds_build
from core.finetune import service
from core.finetune import store as ft
from core.finetune.render import format_report
from core.finetune.validate import Report
from core.visibility import DIRECT, PRIVATE, PUBLIC, SourceRefused, Sources, select_sources

log = logging.getLogger(__name__)
_e = blocks.escape


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


async def validate(
    ctx: Ctx, train: str, valid: str, model: str | None = None, epochs: int | None = None
) -> tuple[Report, list[tuple[int, dict]]]:
    """core's validation, with this bot's settings; a failed screen is a warning in Slack."""
    settings = ctx.deps.settings
    return await service.validate(
        ctx.deps.core.openai,
        train,
        valid or None,  # "" here: too few examples to hold any out
        model=model or settings.finetune_base_model,
        epochs=epochs,
        prices=settings.finetune_prices or None,
        screen=settings.finetune_screening,
    )


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


async def _readable_sources(ctx: Ctx, convs: list[str], named: str | None) -> tuple[Sources, str, list[str]]:
    """Which rated conversations may go in, where the result may be shown, and those conversations.

    Checked before any work: an admin may only take a private channel they can read.
    """
    conv_channels = [c.split(":")[1] for c in convs]
    kinds = await visibility.kinds_of(ctx.deps, {*conv_channels, ctx.channel, *filter(None, [named])})
    try:
        sources = select_sources(kinds, conv_channels, here=ctx.channel, named=named)
    except SourceRefused as exc:
        raise UserError(str(exc)) from exc
    target = await visibility.destination(
        ctx.deps, audience=sources.audience, channel=ctx.channel, user=ctx.user
    )
    return sources, target, [c for c in convs if c.split(":")[1] in sources.channels]


async def dataset_build(ctx: Ctx, args: Args) -> None:
    """Rated-good conversations as chat-format JSONL, stored under a name and posted.

    Only conversations everyone who will see the result can already read go in: see
    core/visibility.select_sources.
    """
    only_channel = channel_in(args.positional)
    persona_filter = args.named.get("persona", "").lower()
    name = dataset_name(args.named.get("name") or f"conversations-{time.strftime('%Y%m%d-%H%M')}")
    store = ctx.deps.core.store
    since = since_time(args.named.get("since", "30d"))
    rated = await feedback.rated_conversations(store, ctx.team, since=since, channel=only_channel)
    sources, target, convs = await _readable_sources(ctx, rated, only_channel)
    examples = await service.examples_from_feedback(
        store, ctx.team, convs, persona=persona_filter, team_prompt=ctx.deps.settings.workspace_persona_prompt
    )
    left_out = _excluded_note(sources.excluded)
    if not examples:
        scope = f" in <#{only_channel}>" if only_channel else ""
        raise UserError(messages.NO_RATED_ANSWERS.format(scope=scope) + left_out)
    train, valid = await service.split_off_loop(examples)
    report, _ = await validate(ctx, train, valid)
    ds = ft.Dataset(
        name=name,
        examples=report.n_examples,
        validation_examples=report.validation_examples or 0,
        source="conversations",
        created_by=ctx.user,
        persona=persona_filter,
        audience=sources.audience,
    )
    saved = await _save(ctx, ds, train, valid)
    title = f"Dataset `{name}` from {len(convs)} rated conversations"
    await _post_report(ctx, report, title=title, target=target, dataset_jsonl=train, dataset_name=name)
    where = " " + messages.SENT_TO_DM if target != ctx.channel else ""
    if saved:
        await ctx.say(messages.DATASET_SAVED.format(name=name, n=report.n_examples) + where + left_out)
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
    name = dataset_name(named.get("name") or file["name"].rsplit(".", 1)[0])
    train, valid = await service.split_off_loop(examples)
    report, _ = await validate(ctx, train, valid)
    ds = ft.Dataset(
        name=name,
        examples=report.n_examples,
        validation_examples=report.validation_examples or 0,
        source=f"qa:{file['name']}",
        created_by=ctx.user,
        persona=persona.name,
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
    model = model_name(named.get("model") or ctx.deps.settings.finetune_base_model)
    report, usable = await validate(ctx, text, "", model=model)
    name = dataset_name(named.get("name") or file["name"].rsplit(".", 1)[0])
    file_name = blocks.escape(file["name"])
    saved = False
    if report.ok:
        train, valid = await service.split_off_loop([ex for _, ex in usable])
        ds = ft.Dataset(
            name=name,
            examples=report.n_examples,
            source=f"file:{file['name']}",
            created_by=ctx.user,
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
