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


async def download(deps: BotDeps, file: dict) -> str:
    url = file.get("url_private_download") or file.get("url_private")
    if not url:
        raise FileProblem(f"`{escape(str(file.get('name')))}` has no download link.")
    if int(file.get("size") or 0) > MAX_DOWNLOAD:
        raise FileProblem(f"`{escape(str(file.get('name')))}` is over {MAX_DOWNLOAD // 1024 // 1024} MB.")
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
            if len(data) > MAX_DOWNLOAD:
                raise FileProblem(
                    f"`{escape(str(file.get('name')))}` is over {MAX_DOWNLOAD // 1024 // 1024} MB."
                )
    # Tens of MB decode in a few hundred ms: not on the loop that acks everyone's events.
    return await asyncio.to_thread(bytes(data).decode, "utf-8-sig", "replace")


def _trusted(url: str, api_url: str) -> bool:
    """The bot token only goes to Slack's file hosts (or the configured Slack API host)."""
    host = urlparse(url).hostname or ""
    api_host = urlparse(api_url).hostname if api_url else ""
    return host == "slack.com" or host.endswith(".slack.com") or (bool(api_host) and host == api_host)
