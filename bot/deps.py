"""Everything listeners need, created once inside the running loop and closed once."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.oauth.token_rotation.async_rotator import AsyncTokenRotator
from slack_sdk.web.async_client import AsyncWebClient

from bot.rate_limits import NATIVE, SlackRates
from bot.tasks import TaskRunner
from bot.workspaces import CURRENT, WorkspaceClient
from core import tokens, turn_queue
from core.conversations import CoreDeps
from core.installations import RedisInstallationStore
from core.llm import create_openai
from core.rate_budget import Limit
from core.settings import ConfigError, Settings
from core.store import close_store, create_store

log = logging.getLogger(__name__)

DEFAULT_SLACK_API_URL = "https://slack.com/api/"


@dataclass
class Stats:
    """Counters for /metrics: enough to check a live bot's cost per turn."""

    turns: int = 0  # turns that reached the model
    answered: int = 0
    failed: int = 0
    skipped: int = 0  # duplicates and foreign threads


@dataclass
class BotDeps:
    settings: Settings
    core: CoreDeps
    client: AsyncWebClient
    session: aiohttp.ClientSession
    tasks: TaskRunner
    rates: SlackRates  # Slack's per-workspace budgets, shared in Redis (bot/rate_limits.py)
    stats: Stats = field(default_factory=Stats)
    background: list[asyncio.Task] = field(default_factory=list)  # watcher etc.; cancelled on close
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    # who holds leases (fine-tune watching): unique per running bot
    instance_id: str = field(
        default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    )
    # Who the bot is, from auth.test at start-up (one workspace). With many workspaces
    # the properties below read the current workspace's (bot/workspaces.py).
    own_bot_user_id: str = ""
    own_bot_id: str = ""
    own_team_id: str = ""
    installations: RedisInstallationStore | None = None  # many workspaces (OAuth) only
    rotator: AsyncTokenRotator | None = None  # refreshes tokens of installs with token rotation
    # Installations read from Redis, per process on purpose (bot/workspaces.py)
    workspace_cache: dict = field(default_factory=dict)
    rotating: set = field(default_factory=set)  # installations this process is refreshing now
    placed: set = field(default_factory=set)  # Grid workspaces whose placement this process wrote
    forgetting: bool = False  # this process is deleting uninstalled workspaces' data
    # Workspaces' own OpenAI clients, by key fingerprint -> (fingerprint, client); per process
    openai_clients: dict = field(default_factory=dict)
    # Threads this process knows exist (so it never reads them from Slack again). Per
    # process on purpose: a miss costs one EXISTS, never a wrong answer.
    known_threads: OrderedDict[str, None] = field(default_factory=OrderedDict)
    # Turn leases this process holds (bot/turns.py), to hand over on shutdown. The leases
    # themselves are in Redis; this is only which of them are ours.
    leases: dict[str, turn_queue.Lease] = field(default_factory=dict)
    accepting: object = None  # the events being written before their ack (bot/intake.py Batch)
    acking: int = 0  # HTTP events between arrival and ack: their work waits (bot/http.py)
    # Per process, at most a minute old and bounded: see bot/auth.py.
    admin_cache: OrderedDict[tuple[str, str], tuple[float, bool]] = field(default_factory=OrderedDict)

    @property
    def bot_user_id(self) -> str:
        current = CURRENT.get()
        return current.bot_user_id if current is not None else self.own_bot_user_id

    @property
    def bot_id(self) -> str:
        current = CURRENT.get()
        return current.bot_id if current is not None else self.own_bot_id

    @property
    def team_id(self) -> str:
        current = CURRENT.get()
        return current.team_id if current is not None else self.own_team_id


def slack_api_url(settings: Settings) -> str:
    url = settings.slack_api_url or DEFAULT_SLACK_API_URL
    return url if url.endswith("/") else url + "/"


def create_slack_client(settings: Settings, session: aiohttp.ClientSession) -> AsyncWebClient:
    """One client on one shared session, honouring Slack's 429 Retry-After."""
    client = WorkspaceClient(
        token=settings.slack_bot_token or None,
        base_url=slack_api_url(settings),
        session=session,
        timeout=30,
    )
    client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=3))
    return client


async def create_deps(settings: Settings) -> BotDeps:
    """Connect Redis, OpenAI and Slack, and learn who the bot is (one auth.test)."""
    store = await create_store(settings)
    session = aiohttp.ClientSession()
    client = create_slack_client(settings, session)
    deps = BotDeps(
        settings=settings,
        core=CoreDeps(settings=settings, store=store, default_openai=create_openai(settings)),
        client=client,
        session=session,
        tasks=TaskRunner(settings.max_concurrent_turns),
        rates=SlackRates(
            store,
            native=settings.streaming_mode == "auto",
            native_limit=Limit(min(settings.native_streams_per_minute, NATIVE.per_minute), NATIVE.burst),
        ),
    )
    # tiktoken loads its encodings on first use (~0.4 s of CPU): not on the first turn.
    await asyncio.to_thread(tokens.encoding_for, settings.openai_model)
    if settings.distributed:
        deps.installations = RedisInstallationStore(store, client_id=settings.slack_client_id)
        deps.rotator = AsyncTokenRotator(
            client_id=settings.slack_client_id, client_secret=settings.slack_client_secret, client=client
        )
        log.info("Many workspaces: each one's token comes from its installation (/slack/install)")
        return deps
    try:
        auth = await _auth_test(client, settings)
    except ConfigError:
        await close_deps(deps)
        raise
    deps.own_bot_user_id = auth.get("user_id", "")
    deps.own_bot_id = auth.get("bot_id", "")
    deps.own_team_id = auth.get("team_id", "")
    log.info("Connected to Slack as %s (team %s)", deps.bot_user_id, deps.team_id)
    return deps


async def close_deps(deps: BotDeps) -> None:
    deps.stopping.set()
    for task in deps.background:
        task.cancel()
    if deps.background:
        # A library may turn our cancellation into its own timeout error; the stop flag
        # ends those loops anyway, and shutdown never waits more than a few seconds.
        await asyncio.wait(deps.background, timeout=5)
    await deps.tasks.drain()
    await deps.core.default_openai.close()
    for _, client in deps.openai_clients.values():
        await client.close()
    await deps.session.close()
    await close_store(deps.core.store)


async def _auth_test(client: AsyncWebClient, settings: Settings) -> dict:
    """Who the bot is; a rejected token or an unreachable Slack becomes a ConfigError that
    says what to do."""
    try:
        return (await client.auth_test()).data
    except SlackApiError as exc:
        raise ConfigError(
            f"Slack rejected SLACK_BOT_TOKEN ({exc.response.get('error')}). Copy it again from your app's "
            "'OAuth & Permissions' page, and reinstall the app if its scopes changed."
        ) from exc
    except (aiohttp.ClientError, OSError) as exc:
        raise ConfigError(
            f"Couldn't reach Slack at {slack_api_url(settings)} ({exc}). Check the network or SLACK_API_URL."
        ) from exc


async def check_slack(settings: Settings) -> None:
    """Fail fast, with a clear message, when the token is rejected or Slack unreachable.

    HTTP mode runs this before uvicorn starts: inside uvicorn's lifespan the same error
    would come out as a traceback. With many workspaces there is no token to check yet.
    """
    if settings.distributed:
        return
    async with aiohttp.ClientSession() as session:
        await _auth_test(create_slack_client(settings, session), settings)
