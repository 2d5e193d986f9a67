"""Files for datasets: the latest upload of a kind in a channel, or a file link."""

from __future__ import annotations

import asyncio
import re
from urllib.parse import urlparse

from slack_sdk.errors import SlackApiError

from bot.blocks import escape
from bot.deps import BotDeps
from bot.errors import FileProblem

MAX_DOWNLOAD = 100 * 1024 * 1024
_FILE_ID = re.compile(r"/files/[A-Z0-9]+/(F[A-Z0-9]+)|\b(F[A-Z0-9]{6,})\b")


async def find_file(deps: BotDeps, *, channel: str, link: str, extensions: tuple[str, ...]) -> dict:
    """The file a link points to, or the newest file with one of `extensions` in `channel`."""
    if link:
        m = _FILE_ID.search(link)
        if not m:
            raise FileProblem(
                f"`{escape(link[:200])}` doesn't look like a Slack file link (…/files/U…/F…/name)."
            )
        try:
            file = (await deps.client.files_info(file=m.group(1) or m.group(2)))["file"]
        except SlackApiError as exc:
            raise FileProblem(
                f"I can't open that file ({exc.response.get('error')}); is it shared in this channel?"
            ) from exc
        if channel not in shared_in(file):
            # What we post about it (its report, the dataset) would show it to this
            # channel's members, who may not be able to see where it was shared.
            raise FileProblem(
                "That file isn't shared in this channel, so I won't read it here: share it in this "
                "channel first, or run the command where it is shared."
            )
        return file
    try:
        listed = await deps.client.files_list(channel=channel, count=50)
    except SlackApiError as exc:
        raise FileProblem(f"I can't list this channel's files ({exc.response.get('error')}).") from exc
    for f in listed.get("files", []):
        if f.get("name", "").lower().endswith(extensions):
            return f
    kinds = " or ".join(extensions)
    raise FileProblem(f"I found no {kinds} file in this channel. Upload one here, or pass a file link.")


def shared_in(file: dict) -> set[str]:
    """Every conversation a Slack file is shared in (public, private, DMs)."""
    where = {*file.get("channels", []), *file.get("groups", []), *file.get("ims", [])}
    for scope in (file.get("shares") or {}).values():
        if isinstance(scope, dict):
            where.update(scope)
    return where


async def download(deps: BotDeps, file: dict, *, cap: int = MAX_DOWNLOAD) -> str:
    """A Slack file's text (see `download_bytes`)."""
    data = await download_bytes(deps, file, cap=cap)
    # Tens of MB decode in a few hundred ms: not on the loop that acks everyone's events.
    return await asyncio.to_thread(data.decode, "utf-8-sig", "replace")


async def download_bytes(deps: BotDeps, file: dict, *, cap: int = MAX_DOWNLOAD) -> bytes:
    """A Slack file, fetched with the bot token from Slack's hosts only, at most `cap`
    bytes (a dataset: 100 MB; a file in a chat message: far less)."""
    url = file.get("url_private_download") or file.get("url_private")
    too_big = f"`{escape(str(file.get('name')))}` is over {_size(cap)}."
    if not url:
        raise FileProblem(f"`{escape(str(file.get('name')))}` has no download link.")
    if int(file.get("size") or 0) > cap:
        raise FileProblem(too_big)
    if not _trusted(url, deps.settings.slack_api_url):
        raise FileProblem(
            f"`{escape(str(file.get('name')))}` isn't hosted by Slack; I only download Slack files."
        )
    headers = {"Authorization": f"Bearer {deps.settings.slack_bot_token}"}
    data = bytearray()
    async with deps.session.get(url, headers=headers) as response:
        if response.status != 200:
            raise FileProblem(
                f"Downloading `{escape(str(file.get('name')))}` failed (HTTP {response.status})."
            )
        async for chunk in response.content.iter_chunked(1 << 16):  # read(n) stops at what is buffered
            data += chunk
            if len(data) > cap:
                raise FileProblem(too_big)
    return bytes(data)


def _size(n: int) -> str:
    return f"{n // 1024 // 1024} MB" if n >= 1024 * 1024 else f"{n // 1024} KB"


def _trusted(url: str, api_url: str) -> bool:
    """The bot token only goes to Slack's file hosts, or to the configured Slack API server
    itself (host and port: another service on the same host is not Slack)."""
    parts = urlparse(url)
    host = parts.hostname or ""
    if parts.scheme == "https" and (host == "slack.com" or host.endswith(".slack.com")):
        return True
    return bool(api_url) and parts.netloc == urlparse(api_url).netloc
