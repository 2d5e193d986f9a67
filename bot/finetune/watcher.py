"""Watching fine-tuning jobs: poll (or react to a webhook) and keep the job card current.

Every bot process runs the watcher; a Redis lease per job makes exactly one of them
refresh each job, and jobs live in Redis, so after a restart watching simply resumes.
"""

from __future__ import annotations

import asyncio
import logging

from slack_sdk.errors import SlackApiError

from bot import workspaces
from bot.deps import BotDeps
from bot.finetune import cards
from core.finetune import jobs
from core.finetune import store as ft
from core.finetune.charts import loss_chart_png, parse_result_csv
from core.finetune.jobs import JobStatus

log = logging.getLogger(__name__)


# Longer than the slowest refresh (retrieve with retries, results, chart, upload).
REFRESH_LOCK_MS = 300_000


def lease_ms(deps: BotDeps) -> int:
    """Long enough to survive one missed poll, short enough to fail over quickly."""
    return int(max(deps.settings.finetune_poll_interval * 3, 5) * 1000)


async def poll_once(deps: BotDeps) -> int:
    """Refresh every watched job whose lease we hold; returns how many we refreshed."""
    store = deps.core.store
    refreshed = 0
    for job_id, team in (await ft.watched_jobs(store)).items():
        if not await ft.hold_lease(store, job_id, deps.instance_id, lease_ms(deps)):
            continue
        try:
            await refresh(deps, team, job_id)
            refreshed += 1
        except Exception:
            log.exception("Refreshing fine-tuning job %s failed; will retry", job_id)
    return refreshed


async def run_watcher(deps: BotDeps) -> None:
    log.info("Fine-tuning watcher started (every %ss)", deps.settings.finetune_poll_interval)
    while not deps.stopping.is_set():
        try:
            await poll_once(deps)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("Fine-tuning watcher pass failed")
        try:  # sleep until the next poll, or until shutdown
            await asyncio.wait_for(deps.stopping.wait(), timeout=deps.settings.finetune_poll_interval)
        except TimeoutError:
            pass


def start_watcher(deps: BotDeps) -> None:
    deps.background.append(asyncio.create_task(run_watcher(deps), name="finetune-watcher"))


async def refresh(deps: BotDeps, team: str, job_id: str) -> None:
    """Bring the card up to date; on the job's end, post the summary and loss curve once.

    A short Redis lock makes concurrent refreshes of one job (a poll, a webhook, a cancel,
    in any process) take turns, so the end of a job is announced exactly once.
    """
    async with ft.refresh_lock(deps.core.store, job_id, deps.instance_id, REFRESH_LOCK_MS) as held:
        if not held:
            return  # someone is refreshing it right now; the next poll sees the result
        async with workspaces.acting_for(deps, team) as installed:
            if installed:  # an uninstalled workspace's card can't be edited any more
                await _refresh(deps, team, job_id)


async def _refresh(deps: BotDeps, team: str, job_id: str) -> None:
    store = deps.core.store
    record = await ft.load_job(store, team, job_id)
    if record is None:
        await ft.stop_watching(store, job_id)
        return
    view = await jobs.retrieve(deps.core.openai, job_id)
    step = view.step or 0
    if (
        view.status != record.status
        or step != record.last_step
        or view.fine_tuned_model != (record.fine_tuned_model or None)
    ):
        try:
            await deps.client.chat_update(
                channel=record.channel,
                ts=record.card_ts,
                text=f"Fine-tuning job {job_id}: {view.status}",
                blocks=cards.job_card(view, dataset=record.dataset, started_by=record.created_by),
            )
        except SlackApiError as exc:
            log.warning("Could not update the job card: %s", exc.response.get("error"))
        record.status, record.last_step = view.status, step
        record.fine_tuned_model = view.fine_tuned_model or ""
        await ft.save_job(store, record)
    if view.terminal and not record.notified:
        # If the summary can't be posted, the next poll tries again; a failing chart
        # upload is handled inside and never causes a repost.
        await _announce_end(deps, record, view)
        record.notified = True
        await ft.save_job(store, record)
        await ft.stop_watching(store, job_id)


async def _announce_end(deps: BotDeps, record: ft.JobRecord, view: jobs.JobView) -> None:
    rows: list[dict] = []
    if view.status == JobStatus.SUCCEEDED:
        try:
            rows = parse_result_csv(await jobs.result_csv(deps.core.openai, view))
        except Exception as exc:  # a missing result file must not hide the good news
            log.warning("No result file for %s: %s", view.id, exc)
    text = cards.job_summary(view, rows=rows)
    await deps.client.chat_postMessage(
        channel=record.channel,
        thread_ts=record.card_ts,
        text=text,
        blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}],
    )
    if rows:
        try:
            title = f"{view.fine_tuned_model or view.id}: loss"
            png = await asyncio.to_thread(loss_chart_png, rows, title=title)  # matplotlib is CPU work
            await deps.client.files_upload_v2(
                channel=record.channel,
                thread_ts=record.card_ts,
                filename="loss-curve.png",
                title="Training and validation loss",
                content=png,
            )
        except (ValueError, SlackApiError) as exc:  # no losses, or Slack refused: the summary stands
            log.warning("No loss chart for %s: %s", view.id, exc)


async def refresh_from_webhook(deps: BotDeps, job_id: str) -> None:
    """A webhook names a job; refresh it now, whichever process holds the polling lease."""
    team = (await ft.watched_jobs(deps.core.store)).get(job_id)
    if team:
        await refresh(deps, team, job_id)
