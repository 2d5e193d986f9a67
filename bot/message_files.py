"""Files shared with a chat message: small text files are read into the question, the
rest are named with the reason they were left out.

Only Slack's own file hosts are ever fetched, with the bot's token (bot/finetune/files.py
`download`), and only files shared in the very message being answered: nothing a user
couldn't already see in the thread.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from bot.blocks import escape
from bot.deps import BotDeps
from bot.errors import FileProblem
from bot.finetune.files import download

TEXT_EXTENSIONS = {
    ".txt", ".md", ".csv", ".tsv", ".json", ".jsonl", ".yaml", ".yml", ".toml", ".ini", ".log",
    ".py", ".js", ".ts", ".tsx", ".jsx", ".java", ".kt", ".go", ".rs", ".rb", ".php", ".c", ".h",
    ".cpp", ".hpp", ".cs", ".swift", ".scala", ".sh", ".sql", ".html", ".css", ".xml",
}  # fmt: skip
MAX_FILE_BYTES = 100 * 1024  # one file
MAX_TOTAL_BYTES = 200 * 1024  # all files of one message
MAX_FILES = 5


def _kind(file: dict) -> str:
    name = str(file.get("name") or "")
    if (file.get("mimetype") or "").startswith("image/"):
        return "image"
    if PurePosixPath(name.lower()).suffix in TEXT_EXTENSIONS or (file.get("mimetype") or "").startswith(
        "text/"
    ):
        return "text"
    return "other"


async def read_files(deps: BotDeps, files: list[dict]) -> tuple[str, list[str]]:
    """The text to add to the user's message, and a note per file left out (Slack markup)."""
    parts: list[str] = []
    notes: list[str] = []
    budget = MAX_TOTAL_BYTES
    for i, file in enumerate(files):
        name = str(file.get("name") or file.get("id") or "file")
        kind = _kind(file)
        if i >= MAX_FILES:
            notes.append(f"skipped `{escape(name)}`: only the first {MAX_FILES} files are read")
        elif kind == "image":
            notes.append(f"skipped `{escape(name)}`: I can't look at images yet")
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
    return "\n\n".join(parts), notes
