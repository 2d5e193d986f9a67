"""Files shared with a chat message: small text files are read into the question, the
rest are named with the reason they were left out.

Only Slack's own file hosts are ever fetched, with the bot's token (bot/finetune/files.py
`download`), and only files shared in the very message being answered: nothing a user
couldn't already see in the thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

from bot.blocks import escape
from bot.deps import BotDeps
from bot.errors import FileProblem
from bot.finetune.files import download, download_bytes

TEXT_EXTENSIONS = {
    ".txt", ".md", ".csv", ".tsv", ".json", ".jsonl", ".yaml", ".yml", ".toml", ".ini", ".log",
    ".py", ".js", ".ts", ".tsx", ".jsx", ".java", ".kt", ".go", ".rs", ".rb", ".php", ".c", ".h",
    ".cpp", ".hpp", ".cs", ".swift", ".scala", ".sh", ".sql", ".html", ".css", ".xml",
}  # fmt: skip
MAX_FILE_BYTES = 100 * 1024  # one file
MAX_TOTAL_BYTES = 200 * 1024  # all files of one message
MAX_FILES = 5
MAX_IMAGE_BYTES = 5 * 1024 * 1024
IMAGE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp"}  # what OpenAI's vision takes


def _kind(file: dict) -> str:
    name = str(file.get("name") or "")
    if (file.get("mimetype") or "").startswith("image/"):
        return "image"
    if PurePosixPath(name.lower()).suffix in TEXT_EXTENSIONS or (file.get("mimetype") or "").startswith(
        "text/"
    ):
        return "text"
    return "other"


@dataclass
class Read:
    text: str  # what goes into the question (inlined text files, image markers)
    notes: list[str]  # one per file left out, and why (Slack markup)
    images: list[dict]  # images to show the model, if it can see (fetched when answering)


async def read_files(deps: BotDeps, files: list[dict]) -> Read:
    """Text files are read now; images are kept by reference for the turn, which shows
    them to a model that can see and says so under the answer otherwise."""
    parts: list[str] = []
    notes: list[str] = []
    images: list[dict] = []
    budget = MAX_TOTAL_BYTES
    for i, file in enumerate(files):
        name = str(file.get("name") or file.get("id") or "file")
        kind = _kind(file)
        if i >= MAX_FILES:
            notes.append(f"skipped `{escape(name)}`: only the first {MAX_FILES} files are read")
        elif kind == "image" and (
            file.get("mimetype") not in IMAGE_TYPES or int(file.get("size") or 0) > MAX_IMAGE_BYTES
        ):
            notes.append(f"skipped `{escape(name)}`: images are read as PNG, JPEG, GIF or WebP up to 5 MB")
        elif kind == "image":
            images.append(
                {
                    k: file.get(k)
                    for k in ("id", "name", "mimetype", "size", "url_private", "url_private_download")
                }
            )
            parts.append(f"[image {name}]")
        elif kind == "other":
            notes.append(f"skipped `{escape(name)}`: only text and code files are read")
        elif int(file.get("size") or 0) > min(MAX_FILE_BYTES, budget):
            notes.append(f"skipped `{escape(name)}`: text files are read up to {MAX_FILE_BYTES // 1024} KB")
        else:
            try:
                text = await download(deps, file, cap=min(MAX_FILE_BYTES, budget))
            except FileProblem as exc:
                notes.append(f"skipped `{escape(name)}`: {exc}")
                continue
            budget -= len(text.encode())
            parts.append(f"[file {name}]\n```\n{text}\n```")
    return Read("\n\n".join(parts), notes, images)


async def fetch_images(deps: BotDeps, images: list[dict]) -> tuple[list[tuple[str, bytes]], list[str]]:
    """The images of a question, as (media type, bytes), and notes for those that failed."""
    fetched, notes = [], []
    for image in images:
        try:
            fetched.append((image["mimetype"], await download_bytes(deps, image, cap=MAX_IMAGE_BYTES)))
        except FileProblem as exc:
            notes.append(f"skipped `{escape(str(image.get('name')))}`: {exc}")
    return fetched, notes
