"""Drive the real bot the way Slack does: signed HTTP requests and Socket Mode envelopes."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import urllib.parse
from dataclasses import dataclass, field

import aiohttp
import uvicorn
from slack_sdk.signature import SignatureVerifier

from bot.http import create_asgi_app
from core.settings import Settings

_ts = itertools.count(1)


def next_ts() -> str:
    return f"{1_700_000_000 + next(_ts)}.{next(_ts):06d}"


def event_body(
    event: dict, *, team: str = "T1", event_id: str | None = None, bot: str = "UBOT", org: str = ""
) -> dict:
    """An Events API payload; `org`: the Enterprise Grid org whose org-wide install serves `team`."""
    if org:
        return {
            **event_body(event, team=team, event_id=event_id, bot=bot),
            "enterprise_id": org,
            "authorizations": [
                {
                    "enterprise_id": org,
                    "team_id": None,
                    "user_id": bot,
                    "is_bot": True,
                    "is_enterprise_install": True,
                }
            ],
        }
    return {
        "token": "legacy",
        "team_id": team,
        "api_app_id": "A1",
        "event": event,
        "type": "event_callback",
        "event_id": event_id or f"Ev{next(_ts):08d}",
        "event_time": int(time.time()),
        "authorizations": [{"team_id": team, "user_id": bot, "is_bot": True}],
    }


def mention(
    text: str,
    *,
    user: str = "U1",
    channel: str = "C1",
    thread_ts: str | None = None,
    ts: str | None = None,
    bot: str = "UBOT",
) -> dict:
    ts = ts or next_ts()
    event = {
        "type": "app_mention",
        "user": user,
        "text": f"<@{bot}> {text}",
        "ts": ts,
        "channel": channel,
        "team": "T1",
    }
    if thread_ts:
        event["thread_ts"] = thread_ts
    return event


def reaction(name: str, *, on_ts: str, user: str = "U3", channel: str = "C1") -> dict:
    """`user` reacting with `name` to the bot's message `on_ts`."""
    return {
        "type": "reaction_added",
        "user": user,
        "reaction": name,
        "item_user": "UBOT",
        "item": {"type": "message", "channel": channel, "ts": on_ts},
        "event_ts": next_ts(),
    }


def message(
    text: str,
    *,
    user: str = "U1",
    channel: str = "C1",
    channel_type: str = "channel",
    thread_ts: str | None = None,
    ts: str | None = None,
    **extra,
) -> dict:
    ts = ts or next_ts()
    event = {
        "type": "message",
        "user": user,
        "text": text,
        "ts": ts,
        "channel": channel,
        "channel_type": channel_type,
        "team": "T1",
        **extra,
    }
    if thread_ts:
        event["thread_ts"] = thread_ts
    return event


@dataclass
class Sent:
    status: int
    body: str
    elapsed: float


@dataclass
class HttpBot:
    """The production ASGI app under uvicorn on a free port, with dependencies inside."""

    env: dict[str, str]
    secret: str = "test-signing-secret"
    url: str = ""
    server: uvicorn.Server | None = None
    task: asyncio.Task | None = None
    session: aiohttp.ClientSession | None = None
    asgi: object = None
    extra: dict = field(default_factory=dict)

    async def start(self) -> HttpBot:
        self.asgi = create_asgi_app(Settings.from_env(self.env, dotenv=False))
        config = uvicorn.Config(self.asgi, host="127.0.0.1", port=0, lifespan="on", log_level="warning")
        self.server = uvicorn.Server(config)
        self.task = asyncio.create_task(self.server.serve())
        for _ in range(500):
            if self.server.started:
                break
            if self.task.done():
                self.task.result()
            await asyncio.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.session = aiohttp.ClientSession()
        return self

    @property
    def deps(self):
        return self.asgi.state.deps

    async def close(self) -> None:
        if self.session:
            await self.session.close()
        if self.server:
            self.server.should_exit = True
        if self.task:
            await asyncio.wait_for(self.task, 30)

    async def post(
        self, path: str, body: str, content_type: str, *, headers: dict | None = None, sign: bool = True
    ) -> Sent:
        ts = str(int(time.time()))
        all_headers = {"Content-Type": content_type, **(headers or {})}
        if sign:
            all_headers["X-Slack-Request-Timestamp"] = ts
            all_headers["X-Slack-Signature"] = SignatureVerifier(self.secret).generate_signature(
                timestamp=ts, body=body
            )
        started = time.perf_counter()
        async with self.session.post(self.url + path, data=body.encode(), headers=all_headers) as response:
            text = await response.text()
        return Sent(response.status, text, time.perf_counter() - started)

    async def event(
        self,
        event: dict,
        *,
        event_id: str | None = None,
        retry_num: int | None = None,
        team: str = "T1",
        bot: str = "UBOT",
        org: str = "",
    ) -> Sent:
        headers = {}
        if retry_num is not None:
            headers = {"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": "http_timeout"}
        body = json.dumps(event_body(event, team=team, event_id=event_id, bot=bot, org=org))
        return await self.post("/slack/events", body, "application/json", headers=headers)

    async def command(
        self,
        command: str,
        text: str,
        *,
        user: str = "U1",
        channel: str = "C1",
        response_url: str = "",
        team: str = "T1",
        trigger_id: str = "trig",
    ) -> Sent:
        form = {
            "token": "legacy",
            "team_id": team,
            "team_domain": "example",
            "channel_id": channel,
            "channel_name": "general",
            "user_id": user,
            "user_name": user.lower(),
            "command": command,
            "text": text,
            "api_app_id": "A1",
            "response_url": response_url,
            "trigger_id": trigger_id,
        }
        return await self.post(
            "/slack/events", urllib.parse.urlencode(form), "application/x-www-form-urlencoded"
        )

    async def action(self, payload: dict) -> Sent:
        body = urllib.parse.urlencode({"payload": json.dumps(payload)})
        return await self.post("/slack/events", body, "application/x-www-form-urlencoded")

    async def idle(self, timeout: float = 10.0) -> None:
        """Wait until no background work is left (answers streamed, state saved)."""
        deadline = time.monotonic() + timeout
        await asyncio.sleep(0.02)
        while self.deps.tasks.in_flight and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert not self.deps.tasks.in_flight, "bot still busy"


def block_action(
    action: dict,
    *,
    user: str,
    response_url: str,
    channel: str = "C1",
    message: dict | None = None,
    team: str = "T1",
) -> dict:
    """A `block_actions` payload as Slack sends it when someone clicks `action` on `message`."""
    message = message or {"ts": "1.0"}
    container = {"type": "message", "channel_id": channel, "message_ts": message["ts"]}
    if message.get("thread_ts"):
        container["thread_ts"] = message["thread_ts"]
    return {
        "type": "block_actions",
        "team": {"id": team},
        "user": {"id": user},
        "api_app_id": "A1",
        "token": "legacy",
        "trigger_id": "t",
        "channel": {"id": channel},
        "container": container,
        "message": message,
        "response_url": response_url,
        "actions": [{"block_id": "b", **action}],
    }
