"""An answer streamed into a Slack thread: native chat streaming, or throttled edits.

Native streaming (`chat_stream`: chat.startStream/appendStream/stopStream) looks best but
its start and stop are Tier 2 (~20 per minute per workspace). So each process spends a
small per-minute budget on native streams and answers the rest, or any that fail to
start, with a placeholder message edited at most once a second (chat.update is Tier 3).
Answers longer than one message can hold continue in a new message in the same thread,
so nothing ever fails with `msg_too_long`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot import blocks, messages
from bot.rate_limits import SlackRates

log = logging.getLogger(__name__)

EDIT_INTERVAL = 1.0
NATIVE_BUFFER = 256
# Errors that mean native streaming will never work here (old workspace plan, missing
# scope, token type): stop trying for the rest of the process.
PERMANENT_NATIVE_ERRORS = {
    "unknown_method",
    "not_allowed_token_type",
    "missing_scope",
    "method_deprecated",
    "feature_not_enabled",
    "not_authed",
    "invalid_auth",
}


class AnswerTakenOver(Exception):
    """Another process holds the thread now and answers this turn: post nothing more."""


@dataclass
class Target:
    channel: str
    thread_ts: str
    team: str
    user: str
    pane: bool = False  # a thread in the assistant pane: it shows a status while we think


class SlackAnswer:
    """One answer as it grows; `append` deltas, then `finish` or `fail`."""

    def __init__(
        self,
        client: AsyncWebClient,
        target: Target,
        *,
        rates: SlackRates,
        edit_interval: float = EDIT_INTERVAL,
        limit: int = blocks.MARKDOWN_LIMIT,
        reuse_ts: str = "",
        on_first_message: Callable[[str], Awaitable[object]] | None = None,
        still_ours: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        self.client = client
        self.target = target
        self.rates = rates
        # An answer a dead process had started showing is rewritten in place, by edits.
        self.reuse_ts = reuse_ts
        self.native = False  # decided in `start`, from the workspace's shared budget
        # Told the first message's ts, so another process can take over this answer.
        self.on_first_message = on_first_message
        self.still_ours = still_ours
        self.edit_interval = edit_interval
        self.limit = limit
        self.stream = None
        self.pending = ""  # native: appended but not yet flushed to Slack
        self.current = ""  # text of the message being written
        self.ts: str | None = None  # edit mode: the message being edited
        self.last_edit = 0.0
        self.message_ts: list[str] = []  # every message this answer produced
        self._held = ""  # see append_model
        self._quiet_until = 0.0  # see _may
        # A busy workspace's answer: no placeholder and no edits, one post when it is done
        # (chat.postMessage has far more room than chat.update's Tier 3).
        self.quiet = False
        self._final_edit_taken = False  # the final edit's call was taken from the budget at start

    async def start(self) -> None:
        """Show that an answer is coming: the assistant status, or a placeholder."""
        if self.reuse_ts:
            await self.rates.before_edit(self.target.team)
            try:
                await self.client.chat_update(
                    channel=self.target.channel,
                    ts=self.reuse_ts,
                    text=messages.THINKING,
                    blocks=blocks.notice(messages.THINKING),
                )
            except SlackApiError as exc:  # deleted meanwhile, or a stream never stopped
                log.info(
                    "Couldn't reuse the answer's message (%s); posting a new one", exc.response.get("error")
                )
                await self._post_placeholder()
                return
            self.ts = self.reuse_ts
            self.message_ts.append(self.ts)
            self.last_edit = time.monotonic()
            return
        self.native = await self.rates.stream(self.target.team)
        if self.native or self.target.pane:
            try:
                await self.client.assistant_threads_setStatus(
                    channel_id=self.target.channel, thread_ts=self.target.thread_ts, status="is thinking…"
                )
            except SlackApiError as exc:  # only assistant threads support it; harmless elsewhere
                log.debug("setStatus unavailable: %s", exc.response.get("error"))
        if self.native:
            return
        if await self.rates.edit_slot(self.target.team):
            self._final_edit_taken = True
            await self._post_placeholder()
        else:
            self.quiet = True

    async def append_model(self, delta: str) -> None:
        """Model text, defanged (see blocks.defang). A trailing "<" waits for the next delta,
        which may turn it into `<!here>`."""
        text = self._held + delta
        self._held = "<" if text.endswith("<") else ""
        await self.append(blocks.defang(text[:-1] if self._held else text))

    async def _release_held(self) -> None:
        if self._held:
            self._held = ""
            await self.append("<")

    async def append(self, delta: str) -> None:
        while delta:
            room = self.limit - len(self.current)
            head, delta = delta[:room], delta[room:]
            if head:
                await (self._native_append(head) if self.native else self._edit_append(head))
            if delta:
                await self._roll_over()

    async def finish(self, footer: list[dict], *, note: str = "") -> None:
        """Close the answer with its footer (persona, model) and any note for the reader."""
        await self._release_held()
        if note:
            await self.append(("\n\n" if self.current else "") + note)
        if not self.current and not self.message_ts:
            await self.append(messages.EMPTY_ANSWER)
        if self.quiet:
            await self._post_whole(footer)
            return
        if self.native:
            try:
                await self._native_stop(footer)
                return
            except SlackApiError as exc:
                # Whatever Slack never received goes into a plain message, with the footer.
                self._give_up_native(exc)
                unsent, self.pending, self.stream = self.pending, "", None
                if not unsent:  # everything was shown: only the footer is missing
                    await self.client.chat_postMessage(
                        channel=self.target.channel, thread_ts=self.target.thread_ts, text="—", blocks=footer
                    )
                    return
                await self._post_placeholder()
                self.current = unsent
        await self._edit(final=True, footer=footer)

    async def fail(self, text: str) -> None:
        """Show an error in the thread: in the placeholder if nothing was said yet."""
        self._held = ""  # a lone "<" at a broken end isn't worth another failing call
        if self.native and self.stream is not None:
            try:
                await self.stream.stop(markdown_text=("\n\n" if self.current else "") + text)
                return
            except SlackApiError as exc:
                self._give_up_native(exc)
        if self.ts and not self.current:
            if self._final_edit_taken:
                self._final_edit_taken = False
            else:
                await self.rates.before_edit(self.target.team)
            await self.client.chat_update(
                channel=self.target.channel, ts=self.ts, text=text, blocks=blocks.notice(text)
            )
            return
        if self.ts:
            await self._edit(final=True, footer=[])
        await self.rates.before_post(self.target.team, self.target.channel)
        await self.client.chat_postMessage(
            channel=self.target.channel,
            thread_ts=self.target.thread_ts,
            text=text,
            blocks=blocks.notice(text),
        )

    # -- native streaming -------------------------------------------------------
    async def _open_stream(self) -> None:
        """The native stream of this message, opened on first use (recipients are required
        outside DMs)."""
        if self.stream is None:
            self.stream = await self.client.chat_stream(
                channel=self.target.channel,
                thread_ts=self.target.thread_ts,
                recipient_team_id=self.target.team,
                recipient_user_id=self.target.user,
                buffer_size=NATIVE_BUFFER,
            )

    async def _native_append(self, text: str) -> None:
        try:
            await self._open_stream()
            first = not self.current
            self.pending += text
            self.current += text
            # The first token is sent at once so the answer appears immediately; after
            # that text is held until a buffer's worth is ready and the workspace's
            # appendStream budget (Tier 4) has room. chunks=[] makes the SDK flush now.
            if not first and (len(self.pending) < NATIVE_BUFFER or not await self._may("append")):
                return
            await self.stream.append(markdown_text=self.pending, chunks=[])
            if self.stream.ts and self.stream.ts not in self.message_ts:
                await self._shown(self.stream.ts)
            self.pending = ""
        except SlackApiError as exc:
            # What Slack already shows stays; what it never got continues in a new message.
            self._give_up_native(exc)
            unsent, self.pending, self.stream = self.pending, "", None
            await self._post_placeholder()
            await self._edit_append(unsent)

    async def _native_stop(self, footer: list[dict]) -> None:
        await self._open_stream()
        await self.stream.stop(markdown_text=self.pending or None, blocks=footer or None)
        if self.stream.ts and self.stream.ts not in self.message_ts:
            await self._shown(self.stream.ts)
        self.pending = ""

    def _give_up_native(self, exc: SlackApiError) -> None:
        error = exc.response.get("error", "") if exc.response else ""
        log.warning("Native streaming failed (%s); falling back to message edits", error)
        self.native = False
        if error in PERMANENT_NATIVE_ERRORS:
            self.rates.native = False

    # -- placeholder + chat.update ---------------------------------------------
    async def _post_placeholder(self) -> None:
        await self.rates.before_post(self.target.team, self.target.channel)
        response = await self.client.chat_postMessage(
            channel=self.target.channel,
            thread_ts=self.target.thread_ts,
            text=messages.THINKING,
            blocks=blocks.notice(messages.THINKING),
        )
        self.ts = response["ts"]
        await self._shown(self.ts)
        self.current = ""
        self.last_edit = time.monotonic()

    async def _post_whole(self, footer: list[dict]) -> None:
        """A quiet answer, posted once done: what fits beside the footer, then the rest."""
        room = blocks.BLOCKS_BUDGET - blocks.text_size(footer)
        text = self.current
        if footer and len(text) > room > 0:
            head, text = blocks.split_text(text, room)
            await self._post_message(head, [])
        await self._post_message(text, footer)

    async def _post_message(self, text: str, footer: list[dict]) -> None:
        """One whole message of a quiet answer. Before the first, `still_ours` is asked: a
        process that lost the thread to another (which will answer) must not post too."""
        if not self.message_ts and self.still_ours is not None and not await self.still_ours():
            raise AnswerTakenOver
        await self.rates.before_post(self.target.team, self.target.channel)
        try:
            response = await self.client.chat_postMessage(
                channel=self.target.channel,
                thread_ts=self.target.thread_ts,
                text=blocks.fallback_text(text),
                blocks=blocks.answer_blocks(text, footer=footer),
            )
        except SlackApiError as exc:
            if exc.response.get("error") not in blocks.BLOCKS_REFUSED:
                raise
            log.warning(
                "Slack refused an answer's blocks (%s); attaching it as a file", exc.response.get("error")
            )
            note = blocks.notice(messages.ANSWER_ATTACHED)
            response = await self.client.chat_postMessage(
                channel=self.target.channel,
                thread_ts=self.target.thread_ts,
                text=messages.ANSWER_ATTACHED,
                blocks=note + footer,
            )
            await self._upload(text)
        await self._shown(response["ts"])

    async def _shown(self, ts: str) -> None:
        self.message_ts.append(ts)
        if len(self.message_ts) == 1 and self.on_first_message is not None:
            await self.on_first_message(ts)

    async def _edit_append(self, text: str) -> None:
        if self.quiet:
            self.current += text
            return
        if self.ts is None:
            await self._post_placeholder()
        first = not self.current
        self.current += text
        # The first text is shown at once; then at most one edit per interval, and only
        # while the workspace's edit budget has room (final edits always get theirs).
        due = first or time.monotonic() - self.last_edit >= self.edit_interval
        if due and await self._may("edit"):
            await self._edit()

    async def _may(self, call: str) -> bool:
        """An optional call (an append, an intermediate edit), if the workspace's budget has
        room; refused, it isn't asked again until the budget says it might."""
        now = time.monotonic()
        if now < self._quiet_until:
            return False
        team = self.target.team
        wait_ms = await (self.rates.append_wait(team) if call == "append" else self.rates.edit_wait(team))
        self._quiet_until = now + wait_ms / 1000
        return not wait_ms

    async def _edit(self, *, final: bool = False, footer: list[dict] | None = None) -> None:
        if self.ts is None:
            await self._post_placeholder()
        footer = (footer or []) if final else []
        room = blocks.BLOCKS_BUDGET - blocks.text_size(footer)
        if final and footer and len(self.current) > room > 0:
            # The footer (buttons, persona menu) must fit beside the text in Slack's total:
            # this message keeps what fits, the rest and the footer go in the next one.
            head, rest = blocks.split_text(self.current, room)
            self.current = head
            await self._edit(final=True, footer=[])
            await self._post_placeholder()
            self.current = rest
            await self._edit(final=True, footer=footer)
            return
        text = self.current if final else self.current + " …"
        if final and self._final_edit_taken:
            self._final_edit_taken = False
        elif final:
            await self.rates.before_edit(self.target.team)
        try:
            await self.client.chat_update(
                channel=self.target.channel,
                ts=self.ts,
                text=blocks.fallback_text(text),
                blocks=blocks.answer_blocks(text, footer=footer),
            )
        except SlackApiError as exc:
            if exc.response.get("error") not in blocks.BLOCKS_REFUSED:
                raise
            if not final:
                self.last_edit = time.monotonic()  # keep the throttle: never a call per delta
                return  # the next edit tries again; the final one falls back below
            await self._attach_instead(text, footer, exc.response.get("error"))
        self.last_edit = time.monotonic()

    async def _attach_instead(self, text: str, footer: list[dict], error: str) -> None:
        """Slack refused the blocks: show a short notice (never the "…" placeholder forever)
        and the whole answer as a file."""
        log.warning("Slack refused an answer's blocks (%s); attaching it as a file", error)
        note = blocks.notice(messages.ANSWER_ATTACHED)
        await self.client.chat_update(
            channel=self.target.channel, ts=self.ts, text=messages.ANSWER_ATTACHED, blocks=note + footer
        )
        await self._upload(text)

    async def _upload(self, text: str) -> None:
        await self.client.files_upload_v2(
            channel=self.target.channel,
            thread_ts=self.target.thread_ts,
            filename="answer.md",
            title="Answer",
            content=text,
        )

    async def _roll_over(self) -> None:
        """The message is full: close it and continue the answer in a new one."""
        if self.quiet:
            part, self.current = self.current, ""  # posted once, whatever happens after
            await self._post_message(part, [])
            return
        if self.native and self.stream is not None:
            unsent = ""
            try:
                await self.stream.stop(markdown_text=self.pending or None)
            except SlackApiError as exc:
                self._give_up_native(exc)
                unsent = self.pending  # never shown: it opens the next message instead
            self.stream = None
            self.pending = ""
            self.current = ""
            if not self.native:
                await self._post_placeholder()
                if unsent:
                    await self._edit_append(unsent)
            return
        await self._edit(final=True, footer=[])
        await self._post_placeholder()
