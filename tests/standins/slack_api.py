"""A local stand-in for the Slack Web API, response_url endpoints, file hosting and Socket Mode.

Tests point the real ``slack_sdk``/``slack_bolt`` clients at it (``AsyncWebClient(base_url=...)``),
so request encoding, retries and the Socket Mode protocol are exercised for real, while the
stand-in records every call and keeps just enough state (messages, streams, files) for assertions.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import mimetypes
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from ._server import LocalServer, short

#: parameters that slack_sdk form-encodes as JSON strings; decoded so tests can assert on objects
JSON_PARAMS = frozenset(
    {"blocks", "attachments", "chunks", "metadata", "files", "view", "outputs", "unfurls"}
)

_FILETYPES = {"txt": "text", "md": "markdown", "jpeg": "jpg", "yml": "yaml", "py": "python"}
_TYPE_GROUPS = {
    "images": {"png", "jpg", "gif", "webp", "bmp", "svg", "heic"},
    "pdfs": {"pdf"},
    "zips": {"zip", "gzip", "tar"},
    "snippets": {"text", "markdown", "python", "javascript", "json", "csv", "yaml", "html", "xml", "jsonl"},
}


@dataclass
class Call:
    """One Web API request as received."""

    method: str
    params: dict[str, Any]
    headers: dict[str, str]
    at: float
    #: True when the call was answered with an injected failure (see SlackStandIn.fail), an auth
    #: error or a tier-enforcement 429 (see SlackStandIn.enforce_rate_limits)
    failed: bool = False


#: Slack's published Web API rate tiers, in calls per minute per app, workspace and method
#: (https://docs.slack.dev/apis/web-api/rate-limits). Slack only says "N+ per minute" with
#: "bursts"; these are the floor values, so a bot that stays within them is safe on real Slack.
TIER_PER_MINUTE: dict[int, float] = {1: 1, 2: 20, 3: 50, 4: 100}

#: Tier of each Web API method the bot uses, from Slack's method reference. Methods not listed
#: are treated as Tier 4 (the most generous), so forgetting one never fails a test spuriously.
#: Copied per stand-in (``SlackStandIn.method_tiers``) so a test can tighten one method, e.g.
#: conversations.replies to Tier 1 for commercially distributed non-Marketplace apps.
METHOD_TIERS: dict[str, int] = {
    "chat.startStream": 2,
    "chat.stopStream": 2,
    "chat.appendStream": 4,
    "chat.update": 3,
    "chat.delete": 3,
    "chat.postEphemeral": 4,
    "conversations.replies": 3,
    "conversations.history": 3,
    "conversations.info": 3,
    "conversations.members": 3,
    "conversations.open": 3,
    "users.info": 4,
    "views.open": 4,
    "views.publish": 4,
    "views.update": 4,
    "views.push": 4,
    "files.list": 3,
    "files.info": 4,
    "files.getUploadURLExternal": 4,
    "files.completeUploadExternal": 4,
}
DEFAULT_TIER = 4
#: never limited here: the bot calls them once at start-up and a 429 there only tests plumbing
RATE_EXEMPT = frozenset({"auth.test", "apps.connections.open"})

#: chat.postMessage is Slack's "special" tier: about 1 message per second per channel with
#: "generous burst behavior", plus a workspace-wide cap Slack only calls "several hundred
#: per minute".
POST_PER_CHANNEL_PER_MINUTE = 60.0
POST_PER_CHANNEL_BURST = 10.0
POST_WORKSPACE_PER_MINUTE = 300.0


def burst_capacity(per_minute: float) -> float:
    """Bucket size for a tier: about ten seconds' worth of calls, but at least 3.

    Slack documents bursts without numbers. A sixth of the per-minute rate lets a bot do a short
    flurry (Tier 3: 8, Tier 4: 16) yet still fails one that keeps going at more than the tier's
    rate; the floor of 3 keeps Tier 1 and Tier 2 from rejecting the second call of a pair.
    """
    return float(max(3, int(per_minute // 6)))


@dataclass
class _Bucket:
    """A token bucket: `capacity` calls at once, refilled at `per_second`."""

    capacity: float
    per_second: float
    tokens: float
    last: float

    def _refill(self, now: float) -> None:
        self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.per_second)
        self.last = now

    def wait(self, now: float) -> float:
        """Seconds until one call is allowed (0 when it is allowed now)."""
        self._refill(now)
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.per_second

    def take(self) -> None:
        self.tokens -= 1


@dataclass
class Upload:
    """A file shared by the bot through the files_upload_v2 flow."""

    filename: str
    title: str | None
    content: bytes
    channel_id: str | None
    thread_ts: str | None
    initial_comment: str | None
    file_id: str = ""


@dataclass
class _Failure:
    error: str
    status: int
    retry_after: int | None


@dataclass
class _Message:
    """Server-side state of one bot message (posted or streamed)."""

    kind: str  # "post" | "stream"
    channel: str
    ts: str
    thread_ts: str | None
    text: str | None = None
    markdown_text: str | None = None
    blocks: list[Any] | None = None
    metadata: Any = None
    stream_parts: list[str] = field(default_factory=list)
    streaming: bool = False
    updated: bool = False  # chat.update replaces streamed text
    deleted: bool = False


@dataclass
class _StoredFile:
    obj: dict[str, Any]
    content: bytes | None = None
    completed: bool = False


def _blocks_text(blocks: list[Any] | None) -> str:
    """Visible text of markdown/section/rich-ish blocks, newline-joined."""
    parts: list[str] = []
    for block in blocks or []:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "markdown" and isinstance(block.get("text"), str):
            parts.append(block["text"])
        elif kind in ("section", "header") and isinstance(block.get("text"), dict):
            parts.append(str(block["text"].get("text", "")))
    return "\n".join(p for p in parts if p)


#: Slack refuses a message whose blocks hold more than about 12,000 characters of text in
#: all (`msg_blocks_too_long`, undocumented but observed), a section over 3,000, a
#: markdown block over 12,000 or more than 50 blocks (`invalid_blocks`).
BLOCKS_TOTAL_LIMIT = 12_000


def _all_block_text(value: Any) -> int:
    """Characters of every `text` string anywhere in the blocks, as Slack counts them."""
    if isinstance(value, dict):
        own = len(value["text"]) if isinstance(value.get("text"), str) else 0
        return own + sum(
            _all_block_text(v) for k, v in value.items() if k != "text" or not isinstance(v, str)
        )
    if isinstance(value, list):
        return sum(_all_block_text(v) for v in value)
    return 0


def blocks_problem(blocks: Any, *, max_blocks: int = 50, message: bool = True) -> str | None:
    """The error Slack answers for these blocks, or None when it accepts them. A view
    (`message=False`) holds up to 100 blocks and has no message's total text limit."""
    if not isinstance(blocks, list):
        return None
    if len(blocks) > max_blocks:
        return "invalid_blocks"
    for block in blocks:
        if not isinstance(block, dict):
            return "invalid_blocks"
        text = block.get("text")
        if block.get("type") == "section":
            if isinstance(text, dict) and len(str(text.get("text", ""))) > 3000:
                return "invalid_blocks"
            if any(len(str(f.get("text", ""))) > 2000 for f in block.get("fields") or []):
                return "invalid_blocks"
        if block.get("type") == "markdown" and isinstance(text, str) and len(text) > 12_000:
            return "invalid_blocks"
    if message and _all_block_text(blocks) > BLOCKS_TOTAL_LIMIT:
        return "msg_blocks_too_long"
    return None


def _chunks_text(chunks: Any) -> str:
    """Concatenated text of markdown_text chunks (slack-sdk >= 3.48 streams text this way)."""
    if not isinstance(chunks, list):
        return ""
    return "".join(
        str(c.get("text", "")) for c in chunks if isinstance(c, dict) and c.get("type") == "markdown_text"
    )


def _filetype(name: str) -> str:
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return _FILETYPES.get(ext, ext or "binary")


class SlackStandIn(LocalServer):
    """Records Slack Web API calls and answers them plausibly; see module docstring."""

    def __init__(
        self,
        *,
        bot_user_id: str = "UBOT",
        bot_id: str = "BBOT",
        team_id: str = "T1",
        enforce_tiers: bool = False,
    ) -> None:
        super().__init__()
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.team_id = team_id
        self.calls: list[Call] = []
        self.users: dict[str, dict[str, Any]] = {}
        #: channel_id -> channel object override for conversations.info
        self.channels: dict[str, dict[str, Any]] = {}
        #: channel_id -> member user ids, for conversations.members
        self.members: dict[str, list[str]] = {}
        #: channel_id -> its messages, oldest first, for conversations.history
        self.history: dict[str, list[dict[str, Any]]] = {}
        # (channel, thread_ts) -> messages that conversations.replies returns
        self.threads: dict[tuple[str, str], list[dict[str, Any]]] = {}
        #: user id -> the Home tab last published for them (views.publish)
        self.home_views: dict[str, dict[str, Any]] = {}
        #: OAuth codes a test hands to /slack/oauth_redirect: code -> the install it stands for
        self.oauth_codes: dict[str, dict[str, Any]] = {}
        #: tokens oauth.v2.access issued (and auth.revoke didn't revoke): token -> team id
        self.issued_tokens: dict[str, str] = {}
        #: refresh tokens issued, each usable once: refresh token -> team id
        self.refresh_tokens: dict[str, str] = {}
        #: tokens replaced by a rotation or revoked: calls with them get `token_revoked`
        self.retired_tokens: set[str] = set()
        #: seconds a rotating token lives (oauth.v2.access `expires_in`); a refresh leaves the
        #: old token working until then, as Slack does
        self.token_lifetime = 43_200
        self.token_expiry: dict[str, float] = {}
        #: (client id, client secret) oauth.v2.access insists on, when set
        self.client_credentials: tuple[str, str] | None = None
        self._call: Call | None = None
        self.responses: dict[str, list[dict[str, Any]]] = {}
        self.uploads: list[Upload] = []
        #: every GET of a url_private(_download) link: (file_id, headers)
        self.downloads: list[tuple[str, dict[str, str]]] = []
        self.socket_connected = asyncio.Event()
        #: number of websocket connections accepted so far (reconnect tests)
        self.socket_connections = 0
        self.envelopes: list[dict[str, Any]] = []
        self.acks: dict[str, dict[str, Any]] = {}
        self._failures: dict[str, list[_Failure]] = {}
        self._expired: set[str] = set()
        self._messages: dict[str, _Message] = {}
        self._files: dict[str, _StoredFile] = {}
        self._ts_counter = 0
        self._id_counter = 0
        self._ws: web.WebSocketResponse | None = None
        self._all_ws: set[web.WebSocketResponse] = set()
        #: calls answered 429 "ratelimited" by tier enforcement (see enforce_rate_limits)
        self.rate_limited: list[Call] = []
        self.method_tiers: dict[str, int] = dict(METHOD_TIERS)
        self._enforce = enforce_tiers
        self._rate_scale = 1.0
        self._buckets: dict[tuple[str, ...], _Bucket] = {}

    # -- public helpers --------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL for AsyncWebClient(base_url=...)."""
        return f"{self.base}/api/"

    def add_install(
        self, code: str, *, team: str, user: str = "U1", rotation: bool = False, org: bool = False
    ) -> None:
        """Make `code` what Slack would send back after `user` installs the app in `team`,
        or, with `org`, across the Enterprise Grid org `team` (an E… id)."""
        self.oauth_codes[code] = {"team": team, "user": user, "rotation": rotation, "org": org}

    def bot_user_of(self, team: str) -> str:
        """The bot's user id in a workspace that installed the app through OAuth: each its
        own, as in Slack (the one-workspace bot is `bot_user_id`)."""
        return f"UB{team}"

    @staticmethod
    def token_of(call: Call) -> str:
        """The bearer token a call was made with."""
        return call.headers.get("Authorization", "").removeprefix("Bearer ").strip()

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    async def wait_for(
        self,
        method: str,
        count: int = 1,
        timeout: float = 5.0,
        where: Callable[[Call], bool] | None = None,
    ) -> list[Call]:
        """Wait until at least `count` (matching) calls to `method` arrived; return them all."""

        def matching() -> list[Call]:
            return [c for c in self.calls_to(method) if where is None or where(c)]

        if not await self._wait_until(lambda: len(matching()) >= count, timeout):
            got = matching()
            listing = "\n".join(
                f"  +{c.at - self.calls[0].at:.3f}s {c.method}{' (failed)' if c.failed else ''} {short(c.params)}"
                for c in self.calls
            )
            raise AssertionError(
                f"expected >= {count} calls to {method}{' matching where' if where else ''} within {timeout}s, "
                f"got {len(got)}. Calls received:\n{listing or '  (none)'}"
            )
        return matching()

    def fail(
        self,
        method: str,
        *,
        error: str = "ratelimited",
        status: int = 200,
        retry_after: int | None = None,
        times: int = 1,
    ) -> None:
        """Make the next `times` calls to `method` answer {"ok": false, "error": error}.

        With retry_after the HTTP status becomes 429 (unless another non-200 status is given) and a
        Retry-After header is sent, which is what slack_sdk's rate-limit retry handler keys on.
        """
        if retry_after is not None and status == 200:
            status = 429
        self._failures.setdefault(method, []).extend(
            _Failure(error, status, retry_after) for _ in range(times)
        )

    def enforce_rate_limits(self, enabled: bool = True, *, scale: float = 1.0) -> None:
        """Answer calls over Slack's published rate tiers with 429, as real Slack does.

        Off by default, so scenario tests are not slowed down or made flaky by it. Benches and
        tests turn it on to prove the bot stays within its budget. `scale` multiplies every
        refill rate (scale=60 turns "per minute" into "per second"); burst sizes stay the same,
        so a test can drain a bucket with a few calls and watch it refill in milliseconds.
        Calling this again starts every bucket full.
        """
        if scale <= 0:
            raise ValueError("scale must be positive")
        self._enforce = enabled
        self._rate_scale = scale
        self._buckets.clear()

    def rate_limited_count(self, method: str | None = None) -> int:
        """How many calls (to `method`, or to any method) tier enforcement answered with 429."""
        return sum(1 for c in self.rate_limited if method is None or c.method == method)

    def response_url(self, key: str | None = None) -> str:
        """A response_url for slash-command/interaction payloads; posts land in responses[key]."""
        key = key or uuid.uuid4().hex[:12]
        self.responses.setdefault(key, [])
        return f"{self.base}/response/{key}"

    def expire_response_url(self, key: str) -> None:
        self._expired.add(key)

    async def wait_response(self, key: str, count: int = 1, timeout: float = 5.0) -> list[dict[str, Any]]:
        if not await self._wait_until(lambda: len(self.responses.get(key, [])) >= count, timeout):
            raise AssertionError(
                f"expected >= {count} posts to response_url {key!r} within {timeout}s, "
                f"got {short(self.responses.get(key, []), 1000)}"
            )
        return self.responses[key]

    def streamed_text(self, ts: str) -> str:
        """Full visible text of the bot message `ts`, however it was produced (stream or post+update)."""
        msg = self._messages.get(ts)
        if msg is None:
            raise AssertionError(f"no bot message with ts {ts!r}; known: {sorted(self._messages)}")
        return self._text_of(msg)

    def messages(self, channel: str | None = None, thread_ts: str | None = None) -> list[dict[str, Any]]:
        """Final state of every (non-deleted) bot message, in posting order."""
        out = []
        for msg in self._messages.values():
            if msg.deleted or (channel is not None and msg.channel != channel):
                continue
            if thread_ts is not None and msg.thread_ts != thread_ts:
                continue
            out.append(
                {
                    "channel": msg.channel,
                    "ts": msg.ts,
                    "thread_ts": msg.thread_ts,
                    "text": self._text_of(msg),
                    "blocks": msg.blocks,
                    "kind": msg.kind,
                    "metadata": msg.metadata,
                    "stopped": not msg.streaming,
                }
            )
        return out

    def add_file(
        self,
        name: str,
        content: bytes,
        channel: str,
        filetype: str | None = None,
        *,
        user: str = "U1",
        title: str | None = None,
    ) -> dict[str, Any]:
        """Register a file as if a user uploaded it to `channel`; returns the Slack file object."""
        file_id = self._new_file_id()
        stored = _StoredFile(
            self._file_object(file_id, name, title, len(content), filetype, user), content, True
        )
        stored.obj["channels"] = [channel]
        self._files[file_id] = stored
        return stored.obj

    # -- Socket Mode -----------------------------------------------------------------------

    async def send_envelope(
        self,
        type: str,
        payload: dict[str, Any],
        *,
        retry_attempt: int = 0,
        retry_reason: str = "",
        accepts_response_payload: bool = False,
    ) -> str:
        """Push an envelope to the connected Socket Mode client; returns its envelope_id."""
        try:
            await asyncio.wait_for(self.socket_connected.wait(), 5.0)
        except TimeoutError:
            raise AssertionError("no Socket Mode client connected within 5s") from None
        assert self._ws is not None
        envelope_id = str(uuid.uuid4())
        envelope = {
            "envelope_id": envelope_id,
            "type": type,
            "payload": payload,
            "accepts_response_payload": accepts_response_payload,
            "retry_attempt": retry_attempt,
            "retry_reason": retry_reason,
        }
        self.envelopes.append(envelope)
        await self._ws.send_json(envelope)
        return envelope_id

    async def wait_ack(self, envelope_id: str, timeout: float = 5.0) -> dict[str, Any]:
        """The JSON the client sent back for `envelope_id` (may carry a response payload)."""
        if not await self._wait_until(lambda: envelope_id in self.acks, timeout):
            raise AssertionError(
                f"no ack for envelope {envelope_id} within {timeout}s; acks: {list(self.acks)}"
            )
        return self.acks[envelope_id]

    async def disconnect_socket(self, reason: str = "refresh_requested") -> None:
        """Ask the client to reconnect, like Slack does periodically (type "disconnect")."""
        if self._ws is not None and not self._ws.closed:
            await self._ws.send_json(
                {"type": "disconnect", "reason": reason, "debug_info": {"host": "standin"}}
            )

    # -- server plumbing -------------------------------------------------------------------

    def _build_app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/api/{method}", self._handle_api)
        app.router.add_post("/upload/{file_id}", self._handle_upload)
        app.router.add_get("/files/{file_id}", self._handle_download)
        app.router.add_post("/response/{key}", self._handle_response_url)
        app.router.add_get("/socket", self._handle_socket)
        return app

    async def _on_shutdown(self, app: web.Application) -> None:
        for ws in list(self._all_ws):
            await ws.close(code=1001, message=b"server shutdown")

    def _next_ts(self) -> str:
        self._ts_counter += 100
        return f"{1700000000 + self._ts_counter // 1_000_000}.{self._ts_counter % 1_000_000:06d}"

    def _new_file_id(self) -> str:
        self._id_counter += 1
        return f"F{self._id_counter:08d}"

    def _file_object(
        self, file_id: str, name: str, title: str | None, size: int, filetype: str | None, user: str
    ) -> dict[str, Any]:
        return {
            "id": file_id,
            "created": int(time.time()) + self._id_counter,  # strictly increasing for "newest first"
            "timestamp": int(time.time()),
            "name": name,
            "title": title or name,
            "mimetype": mimetypes.guess_type(name)[0] or "application/octet-stream",
            "filetype": filetype or _filetype(name),
            "user": user,
            "size": size,
            "mode": "hosted",
            "is_external": False,
            "url_private": f"{self.base}/files/{file_id}",
            "url_private_download": f"{self.base}/files/{file_id}",
            "channels": [],
        }

    def _bucket(self, key: tuple[str, ...], per_minute: float, capacity: float, now: float) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            per_second = per_minute * self._rate_scale / 60
            bucket = self._buckets[key] = _Bucket(capacity, per_second, capacity, now)
        return bucket

    def _rate_limit_wait(self, call: Call) -> float:
        """Seconds the caller must wait before `call` is allowed; 0 means allowed (and counted).

        Buckets are per (workspace, method), as Slack's are. The stand-in serves one team, so the
        bearer token stands for the workspace. A call counts against every bucket it needs only
        when all of them allow it, so a rejected post does not also drain the channel's budget.
        """
        if not self._enforce or call.method in RATE_EXEMPT:
            return 0.0
        workspace = call.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        now = time.monotonic()
        if call.method == "chat.postMessage":
            channel = str(call.params.get("channel", ""))
            cap = burst_capacity(POST_WORKSPACE_PER_MINUTE)
            buckets = [
                self._bucket((workspace, call.method), POST_WORKSPACE_PER_MINUTE, cap, now),
                self._bucket(
                    (workspace, call.method, channel),
                    POST_PER_CHANNEL_PER_MINUTE,
                    POST_PER_CHANNEL_BURST,
                    now,
                ),
            ]
        else:
            per_minute = TIER_PER_MINUTE[self.method_tiers.get(call.method, DEFAULT_TIER)]
            buckets = [self._bucket((workspace, call.method), per_minute, burst_capacity(per_minute), now)]
        wait = max(b.wait(now) for b in buckets)
        if wait == 0:
            for b in buckets:
                b.take()
        return wait

    def _text_of(self, msg: _Message) -> str:
        if msg.kind == "stream" and not msg.updated:
            return "".join(msg.stream_parts)
        return _blocks_text(msg.blocks) or msg.markdown_text or msg.text or ""

    async def _read_params(self, request: web.Request) -> dict[str, Any]:
        """Merge query string and body (JSON, urlencoded or multipart), decoding JSON-string params."""
        params: dict[str, Any] = dict(request.query)
        if request.method != "GET" and request.can_read_body:
            ctype = request.content_type
            if ctype == "application/json":
                body = await request.json()
                if isinstance(body, dict):
                    params.update(body)
            elif ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
                for key, value in (await request.post()).items():
                    params[key] = value.file.read() if isinstance(value, web.FileField) else value
        for key in JSON_PARAMS & params.keys():
            value = params[key]
            if isinstance(value, str) and value[:1] in ("[", "{"):
                try:
                    params[key] = json.loads(value)
                except ValueError:
                    pass
        return params

    @staticmethod
    def _ok(**body: Any) -> web.Response:
        return web.json_response({"ok": True, **body})

    @staticmethod
    def _err(error: str, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
        return web.json_response({"ok": False, "error": error}, status=status, headers=headers)

    async def _handle_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        call = Call(method, await self._read_params(request), dict(request.headers), time.monotonic())
        self.calls.append(call)
        try:
            if not request.headers.get("Authorization", "").strip():
                call.failed = True
                return self._err("not_authed")
            if self.token_of(call) in self.retired_tokens:
                call.failed = True
                return self._err("token_revoked")
            if time.time() > self.token_expiry.get(self.token_of(call), math.inf):
                call.failed = True
                return self._err("token_expired")
            # Tier enforcement comes before injected failures and the handler: like Slack, a
            # throttled call has no effect, and a queued fail() waits for the next call through.
            if wait := self._rate_limit_wait(call):
                call.failed = True
                self.rate_limited.append(call)
                return self._err("ratelimited", 429, {"Retry-After": str(max(1, math.ceil(wait)))})
            pending = self._failures.get(method)
            if pending:
                failure = pending.pop(0)
                call.failed = True
                headers = (
                    {"Retry-After": str(failure.retry_after)} if failure.retry_after is not None else None
                )
                return self._err(failure.error, failure.status, headers)
            handler = getattr(self, "_api_" + method.replace(".", "_"), None)
            self._call = call
            return handler(call.params) if handler else self._ok()
        finally:
            self._notify()

    # -- Web API methods (named after the method, dots -> underscores) ----------------------

    def _api_oauth_v2_access(self, p: dict[str, Any]) -> web.Response:
        """A code from `add_install` becomes that workspace's bot token (once); a refresh
        token becomes a new token (once), and the token it replaces stops working."""
        if self.client_credentials is not None and not self._client_authenticated(p):
            return self._err("invalid_client_id")
        if p.get("grant_type") == "refresh_token":
            return self._refresh(str(p.get("refresh_token", "")))
        install = self.oauth_codes.pop(str(p.get("code", "")), None)
        if install is None:
            return self._err("invalid_code")
        team = install["team"]
        token = f"xoxb-{team}-{self._new_file_id()}"
        extra: dict[str, Any] = {}
        if install["rotation"]:
            token = "xoxe." + token
            refresh = f"xoxe-1-{team}-{self._new_file_id()}"
            self.refresh_tokens[refresh] = team
            extra = {"refresh_token": refresh, "expires_in": self.token_lifetime}
            self.token_expiry[token] = time.time() + self.token_lifetime
        self.issued_tokens[token] = team
        return self._ok(
            access_token=token,
            token_type="bot",
            scope="app_mentions:read,chat:write,commands",
            bot_user_id=self.bot_user_of(team),
            app_id="A1",
            team=None if install["org"] else {"id": team, "name": f"Team {team}"},
            enterprise={"id": team, "name": f"Org {team}"} if install["org"] else None,
            is_enterprise_install=install["org"],
            authed_user={"id": install["user"]},
            **extra,
        )

    def _refresh(self, refresh: str) -> web.Response:
        team = self.refresh_tokens.pop(refresh, None)
        if team is None:
            return self._err("invalid_refresh_token")
        token, new_refresh = f"xoxe.xoxb-{team}-{self._new_file_id()}", f"xoxe-1-{team}-{self._new_file_id()}"
        self.issued_tokens[token] = team
        self.token_expiry[token] = time.time() + self.token_lifetime
        self.refresh_tokens[new_refresh] = team
        return self._ok(
            access_token=token,
            token_type="bot",
            refresh_token=new_refresh,
            expires_in=self.token_lifetime,
            team={"id": team},
            enterprise=None,
        )

    def _client_authenticated(self, p: dict[str, Any]) -> bool:
        expected = self.client_credentials
        header = self._call.headers.get("Authorization", "") if self._call else ""
        if header.startswith("Basic "):
            try:
                given = tuple(base64.b64decode(header[6:]).decode().split(":", 1))
            except ValueError:
                return False
            return given == expected
        return (p.get("client_id"), p.get("client_secret")) == expected

    def _api_auth_revoke(self, p: dict[str, Any]) -> web.Response:
        token = self.token_of(self._call) if self._call else ""
        revoked = self.issued_tokens.pop(token, None) is not None
        if revoked:
            self.retired_tokens.add(token)
        return self._ok(revoked=revoked)

    def _api_auth_test(self, p: dict[str, Any]) -> web.Response:
        issued = self.issued_tokens.get(self.token_of(self._call)) if self._call else None
        if issued is not None:  # a token oauth.v2.access gave a workspace
            return self._ok(
                url=f"https://{issued.lower()}.slack.com/",
                team=f"Team {issued}",
                user="threadwise",
                team_id=issued,
                user_id=self.bot_user_of(issued),
                bot_id=f"B{issued}",
            )
        return self._ok(
            url="https://example.slack.com/",
            team="Example",
            user="threadwise",
            team_id=self.team_id,
            user_id=self.bot_user_id,
            bot_id=self.bot_id,
        )

    def _api_chat_postMessage(self, p: dict[str, Any]) -> web.Response:
        channel = p.get("channel")
        if not channel:
            return self._err("channel_not_found")
        if problem := blocks_problem(p.get("blocks")):
            return self._err(problem)
        ts = self._next_ts()
        self._messages[ts] = _Message(
            "post",
            channel,
            ts,
            p.get("thread_ts"),
            text=p.get("text"),
            markdown_text=p.get("markdown_text"),
            blocks=p.get("blocks"),
            metadata=p.get("metadata"),
        )
        message = {"type": "message", **p, "ts": ts, "user": self.bot_user_id, "bot_id": self.bot_id}
        return self._ok(channel=channel, ts=ts, message=message)

    def _api_chat_update(self, p: dict[str, Any]) -> web.Response:
        msg = self._messages.get(str(p.get("ts")))
        if msg is None or msg.deleted:
            return self._err("message_not_found")
        if problem := blocks_problem(p.get("blocks")):
            return self._err(problem)
        for attr in ("text", "markdown_text", "blocks", "metadata"):
            if attr in p:
                setattr(msg, attr, p[attr])
        if "text" in p or "markdown_text" in p or _blocks_text(p.get("blocks")):
            msg.updated = True  # a stream edited via chat.update (e.g. fallback) shows the new text
        return self._ok(channel=msg.channel, ts=msg.ts, text=p.get("text", msg.text))

    def _api_chat_delete(self, p: dict[str, Any]) -> web.Response:
        msg = self._messages.get(str(p.get("ts")))
        if msg is None or msg.deleted:
            return self._err("message_not_found")
        msg.deleted = True
        return self._ok(channel=msg.channel, ts=msg.ts)

    def _api_chat_postEphemeral(self, p: dict[str, Any]) -> web.Response:
        return self._ok(message_ts=self._next_ts())

    def _stream_piece(self, msg: _Message, p: dict[str, Any]) -> None:
        if isinstance(p.get("markdown_text"), str):
            msg.stream_parts.append(p["markdown_text"])
        msg.stream_parts.append(_chunks_text(p.get("chunks")))

    def _api_chat_startStream(self, p: dict[str, Any]) -> web.Response:
        channel = p.get("channel")
        if not channel:
            return self._err("channel_not_found")
        ts = self._next_ts()
        msg = _Message("stream", channel, ts, p.get("thread_ts"), streaming=True)
        self._stream_piece(msg, p)
        self._messages[ts] = msg
        return self._ok(channel=channel, ts=ts)

    def _streaming_message(self, p: dict[str, Any]) -> _Message | web.Response:
        msg = self._messages.get(str(p.get("ts")))
        if msg is None or msg.deleted:
            return self._err("message_not_found")
        if not msg.streaming:
            return self._err("message_not_in_streaming_state")
        return msg

    def _api_chat_appendStream(self, p: dict[str, Any]) -> web.Response:
        msg = self._streaming_message(p)
        if isinstance(msg, web.Response):
            return msg
        self._stream_piece(msg, p)
        return self._ok(channel=msg.channel, ts=msg.ts)

    def _api_chat_stopStream(self, p: dict[str, Any]) -> web.Response:
        msg = self._streaming_message(p)
        if isinstance(msg, web.Response):
            return msg
        self._stream_piece(msg, p)
        msg.streaming = False
        if "blocks" in p:
            msg.blocks = p["blocks"]
        if "metadata" in p:
            msg.metadata = p["metadata"]
        return self._ok(channel=msg.channel, ts=msg.ts)

    # -- assistant pane (assistant.threads.*): validated as Slack does, recorded in `calls` --
    def _assistant_thread_problem(self, p: dict[str, Any]) -> str | None:
        if not p.get("channel_id") or not p.get("thread_ts"):
            return "invalid_arguments"
        return None

    def _api_assistant_threads_setSuggestedPrompts(self, p: dict[str, Any]) -> web.Response:
        if problem := self._assistant_thread_problem(p):
            return self._err(problem)
        prompts = p.get("prompts")
        if isinstance(prompts, str):
            prompts = json.loads(prompts)
        if not isinstance(prompts, list) or not 1 <= len(prompts) <= 4:
            return self._err("invalid_arguments")
        if not all(isinstance(x, dict) and x.get("title") and x.get("message") for x in prompts):
            return self._err("invalid_arguments")
        return self._ok()

    def _api_assistant_threads_setTitle(self, p: dict[str, Any]) -> web.Response:
        return self._err(problem) if (problem := self._assistant_thread_problem(p)) else self._ok()

    def _api_assistant_threads_setStatus(self, p: dict[str, Any]) -> web.Response:
        return self._err(problem) if (problem := self._assistant_thread_problem(p)) else self._ok()

    def _api_users_info(self, p: dict[str, Any]) -> web.Response:
        uid = str(p.get("user", ""))
        if not uid:
            return self._err("user_not_found")
        default = {"id": uid, "name": uid.lower(), "is_admin": False, "is_owner": False, "is_bot": False}
        return self._ok(user=self.users.get(uid, default))

    def _api_conversations_info(self, p: dict[str, Any]) -> web.Response:
        ch = str(p.get("channel", ""))
        if not ch:
            return self._err("channel_not_found")
        return self._ok(
            channel=self.channels.get(ch, {"id": ch, "name": "general", "is_im": ch.startswith("D")})
        )

    def _api_conversations_members(self, p: dict[str, Any]) -> web.Response:
        ch = str(p.get("channel", ""))
        if ch not in self.members and ch not in self.channels:
            return self._err("channel_not_found")
        return self._ok(members=self.members.get(ch, []), response_metadata={"next_cursor": ""})

    def _api_conversations_open(self, p: dict[str, Any]) -> web.Response:
        """The bot's DM with a user: one stable id per user, as Slack does."""
        users = str(p.get("users", "")).split(",")
        if len(users) != 1 or not users[0]:
            return self._err("users_list_not_supplied")
        return self._ok(channel={"id": f"D{users[0]}", "is_im": True})

    def _api_conversations_replies(self, p: dict[str, Any]) -> web.Response:
        messages = self.threads.get((str(p.get("channel", "")), str(p.get("ts", ""))), [])
        limit = int(p.get("limit") or 1000)
        return self._ok(messages=messages[:limit], has_more=len(messages) > limit)

    def _api_conversations_history(self, p: dict[str, Any]) -> web.Response:
        """Newest first, as Slack returns them; `not_in_channel` where `members` says the bot
        isn't in the channel."""
        ch = str(p.get("channel", ""))
        if ch in self.members and self.bot_user_id not in self.members[ch]:
            return self._err("not_in_channel")
        newest_first = list(reversed(self.history.get(ch, [])))
        limit = int(p.get("limit") or 100)
        return self._ok(messages=newest_first[:limit], has_more=len(newest_first) > limit)

    def _api_apps_connections_open(self, p: dict[str, Any]) -> web.Response:
        return self._ok(url=f"ws://{self.host}:{self.port}/socket")

    def _api_views_open(self, p: dict[str, Any]) -> web.Response:
        view = p.get("view") if isinstance(p.get("view"), dict) else {}
        view_id = p.get("view_id") or f"V{self._next_ts().replace('.', '')}"
        return self._ok(view={**view, "id": view_id, "team_id": self.team_id})

    def _api_views_publish(self, p: dict[str, Any]) -> web.Response:
        """A user's Home tab: kept in `home_views`; refused like Slack when malformed."""
        view = p.get("view")
        if isinstance(view, str):
            view = json.loads(view)
        if not p.get("user_id") or not isinstance(view, dict):
            return self._err("invalid_arguments")
        if view.get("type") != "home":
            return self._err("invalid_arguments")
        if blocks_problem(view.get("blocks"), max_blocks=100, message=False):
            return self._err("invalid_blocks")
        self.home_views[str(p["user_id"])] = view
        return self._ok(view={**view, "id": f"VH{p['user_id']}", "team_id": self.team_id})

    def _api_users_conversations(self, p: dict[str, Any]) -> web.Response:
        """The user's channels per `members`: public ones, and private ones the bot is in too."""
        user = str(p.get("user") or self.bot_user_id)
        found = []
        for ch, members in self.members.items():
            private = bool(self.channels.get(ch, {}).get("is_private"))
            if user in members and (not private or self.bot_user_id in members):
                found.append({"id": ch, "is_private": private})
        return self._ok(channels=found, response_metadata={"next_cursor": ""})

    _api_views_update = _api_views_open
    _api_views_push = _api_views_open

    def _api_files_getUploadURLExternal(self, p: dict[str, Any]) -> web.Response:
        filename, length = p.get("filename"), p.get("length")
        if not filename or length in (None, ""):
            return self._err("invalid_arguments")
        file_id = self._new_file_id()
        self._files[file_id] = _StoredFile(
            self._file_object(file_id, str(filename), None, int(length), None, self.bot_user_id)
        )
        return self._ok(upload_url=f"{self.base}/upload/{file_id}", file_id=file_id)

    def _api_files_completeUploadExternal(self, p: dict[str, Any]) -> web.Response:
        entries = p.get("files")
        if not isinstance(entries, list) or not entries:
            return self._err("invalid_arguments")
        stored_files = [self._files.get(str(e.get("id"))) for e in entries]
        if any(s is None or s.content is None for s in stored_files):
            return self._err("file_not_found")
        channel, thread_ts = p.get("channel_id"), p.get("thread_ts")
        out = []
        for entry, stored in zip(entries, stored_files, strict=True):
            assert stored is not None and stored.content is not None
            obj = stored.obj
            if entry.get("title"):
                obj["title"] = entry["title"]
            if channel:
                obj["channels"] = [channel]
            stored.completed = True
            self.uploads.append(
                Upload(
                    filename=obj["name"],
                    title=entry.get("title"),
                    content=stored.content,
                    channel_id=channel,
                    thread_ts=thread_ts,
                    initial_comment=p.get("initial_comment"),
                    file_id=obj["id"],
                )
            )
            out.append(obj)
        return self._ok(files=out)

    def _api_files_info(self, p: dict[str, Any]) -> web.Response:
        stored = self._files.get(str(p.get("file")))
        if stored is None or not stored.completed:
            return self._err("file_not_found")
        return self._ok(file=stored.obj)

    def _api_files_list(self, p: dict[str, Any]) -> web.Response:
        channel, user = p.get("channel"), p.get("user")
        wanted = {t.strip() for t in str(p.get("types") or "all").split(",") if t.strip()}
        files = [s.obj for s in self._files.values() if s.completed]
        if channel:
            files = [f for f in files if channel in f["channels"]]
        if user:
            files = [f for f in files if f["user"] == user]
        if "all" not in wanted:
            allowed = set().union(*(_TYPE_GROUPS.get(t, {t}) for t in wanted))
            files = [f for f in files if f["filetype"] in allowed]
        files.sort(key=lambda f: f["created"], reverse=True)
        total = len(files)
        count = int(p.get("count") or 100)
        return self._ok(files=files[:count], paging={"count": count, "total": total, "page": 1, "pages": 1})

    # -- non-API endpoints ------------------------------------------------------------------

    async def _handle_upload(self, request: web.Request) -> web.Response:
        """The upload_url step of files_upload_v2: slack_sdk POSTs the raw bytes (multipart also accepted)."""
        stored = self._files.get(request.match_info["file_id"])
        if stored is None:
            return web.Response(status=404, text="file_not_found")
        if request.content_type == "multipart/form-data":
            form = await request.post()
            fields = [v for v in form.values() if isinstance(v, web.FileField)]
            data = fields[0].file.read() if fields else b""
        else:
            data = await request.read()
        stored.content = data
        stored.obj["size"] = len(data)
        self._notify()
        return web.Response(text=f"OK - {len(data)}")

    async def _handle_download(self, request: web.Request) -> web.Response:
        """Serve url_private_download; like Slack, only with a bearer token."""
        file_id = request.match_info["file_id"]
        self.downloads.append((file_id, dict(request.headers)))
        stored = self._files.get(file_id)
        if stored is None or stored.content is None:
            return web.Response(status=404, text="file_not_found")
        if not request.headers.get("Authorization", "").startswith("Bearer "):
            return web.Response(status=403, text="not_authed: url_private_download needs a Bearer token")
        return web.Response(body=stored.content, content_type=stored.obj["mimetype"])

    async def _handle_response_url(self, request: web.Request) -> web.Response:
        key = request.match_info["key"]
        if key in self._expired:
            return web.Response(status=404, text="expired_url")
        try:
            body = await request.json()
        except ValueError:
            return web.Response(status=400, text="invalid_payload")
        self.responses.setdefault(key, []).append(body)
        self._notify()
        return web.Response(text="ok")

    async def _handle_socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True, timeout=1.0)  # short close handshake on shutdown
        await ws.prepare(request)
        self._all_ws.add(ws)
        self._ws = ws  # a new connection replaces the previous one for send_envelope
        self.socket_connections += 1
        await ws.send_json(
            {
                "type": "hello",
                "num_connections": 1,
                "debug_info": {"host": "standin", "build_number": 1, "approximate_connection_time": 3600},
                "connection_info": {"app_id": "A1"},
            }
        )
        self.socket_connected.set()
        self._notify()
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                try:
                    data = json.loads(msg.data)
                except ValueError:
                    continue
                if isinstance(data, dict) and data.get("envelope_id"):
                    self.acks[str(data["envelope_id"])] = data
                    self._notify()
                elif isinstance(data, dict) and data.get("type") == "ping":
                    await ws.send_json({"type": "pong", "id": data.get("id")})
        finally:
            self._all_ws.discard(ws)
            if self._ws is ws:
                self._ws = None
                self.socket_connected.clear()
            self._notify()
        return ws
