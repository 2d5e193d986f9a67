"""Command line for dataset authors: `python -m core.finetune validate data.jsonl`.

Exit codes suit CI: 0 when the dataset is acceptable (warnings allowed), 1 when it has
errors, 2 when the command itself could not run (bad arguments, unreadable file,
screening unavailable). Subcommands hang off one parser so more can be added.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

from core.finetune import service
from core.finetune.report import Report
from core.finetune.validate import DEFAULT_MODEL, format_report, report_to_dict

EXIT_OK, EXIT_ERRORS, EXIT_USAGE = 0, 1, 2


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core.finetune", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    validate = commands.add_parser("validate", help="check a chat fine-tuning JSONL file before upload")
    validate.add_argument("file", help="training JSONL ('-' for stdin)")
    validate.add_argument(
        "--validation", metavar="FILE", help="validation JSONL, checked too and for overlap"
    )
    validate.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"model to fine-tune (default {DEFAULT_MODEL})"
    )
    validate.add_argument("--epochs", type=_positive_int, help="epochs to bill for (default: recommended)")
    validate.add_argument("--min-examples", type=_positive_int, default=10, help=argparse.SUPPRESS)
    validate.add_argument("--json", action="store_true", help="print the report as JSON")
    validate.add_argument(
        "--screen",
        action="store_true",
        help="also run moderation and embedding near-duplicate checks (needs OPENAI_API_KEY or OPENAI_BASE_URL)",
    )
    validate.add_argument("--similarity", type=float, default=0.95, help="near-duplicate cosine threshold")
    validate.set_defaults(handler=_validate)
    return parser


def _read(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    with open(path, encoding="utf-8") as handle:
        return handle.read()


async def _run_validation(texts: dict[str, str], args: argparse.Namespace) -> Report:
    """The same validation and screens as `/finetune validate`, failing hard on a screen error."""
    client = None
    if args.screen:
        from openai import AsyncOpenAI  # imported lazily so offline runs stay light

        client = AsyncOpenAI(api_key=os.environ.get("OPENAI_API_KEY") or "unused")
    try:
        report, _ = await service.validate(
            client,
            texts["train"],
            texts.get("validation"),
            model=args.model,
            epochs=args.epochs,
            min_examples=args.min_examples,
            screen=args.screen,
            screen_despite_errors=True,
            similarity=args.similarity,
            on_screen_error=service.OnScreenError.RAISE,
        )
    finally:
        if client is not None:
            await client.close()
    return report


def _validate(args: argparse.Namespace) -> int:
    texts: dict[str, str] = {}
    for file, path in (("train", args.file), ("validation", args.validation)):
        if path is None:
            continue
        try:
            texts[file] = _read(path)
        except (OSError, UnicodeDecodeError) as exc:
            print(f"error: cannot read {path}: {exc}", file=sys.stderr)
            return EXIT_USAGE
    if args.screen and not (os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL")):
        print("error: --screen needs OPENAI_API_KEY or OPENAI_BASE_URL", file=sys.stderr)
        return EXIT_USAGE

    try:
        report = asyncio.run(_run_validation(texts, args))
    except Exception as exc:  # a screen that was asked for and didn't run: say so, don't pass
        if not args.screen:
            raise
        print(f"error: screening failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    _print(report, args)
    return EXIT_OK if report.ok else EXIT_ERRORS


def _print(report: Report, args: argparse.Namespace) -> None:
    if args.json:
        data: dict[str, Any] = {
            "file": args.file,
            "validation_file": args.validation,
            **report_to_dict(report),
        }
        print(json.dumps(data, indent=2))
        return
    print(f"{args.file}" + (f" (validation: {args.validation})" if args.validation else ""))
    print(format_report(report))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)
