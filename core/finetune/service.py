"""The fine-tuning workflow, once, for every front end (Slack and `python -m core.finetune`).

Slack handlers and the CLI parse their input and show results; what happens in between
lives here: how examples are drawn from rated conversations, how a dataset is split, how
it is validated and screened (and what a screening failure means), and how held-out
examples are read back. CPU-heavy steps run in a worker thread, so a bot's event loop
keeps acking while an admin validates 20,000 examples.
"""

from __future__ import annotations

import asyncio
import json
import logging
from enum import StrEnum
from functools import partial
from typing import Any

from core import feedback, personas
from core.finetune import datasets, screening
from core.finetune.report import Problem, Report
from core.finetune.split import split_dataset
from core.finetune.validate import valid_examples, validate_and_collect
from core.store import Store

log = logging.getLogger(__name__)

# One seed for the train/validation split and for the job: re-running a dataset reproduces
# both. Datasets under MIN_TO_SPLIT examples are too small to hold any out.
SEED = 42
VALIDATION_FRACTION = 0.1
MIN_TO_SPLIT = 10

Pairs = list[tuple[int, dict]]


class OnScreenError(StrEnum):
    """What a failed moderation or near-duplicate screen means.

    In Slack a local model server often has no moderation endpoint: the report says the
    screen was skipped. On the CLI, a screen that was asked for and didn't run must fail
    the command (exit 2), or CI would pass a dataset nobody screened.
    """

    WARN = "warn"
    RAISE = "raise"


def split(examples: list[dict]) -> tuple[str, str]:
    """Train and validation JSONL; identical examples stay on one side."""
    if len(examples) < MIN_TO_SPLIT:
        return datasets.to_jsonl(examples), ""
    train, valid = split_dataset(examples, validation_fraction=VALIDATION_FRACTION, seed=SEED)
    return datasets.to_jsonl(train), datasets.to_jsonl(valid)


async def split_off_loop(examples: list[dict]) -> tuple[str, str]:
    return await asyncio.to_thread(split, examples)


def held_out(jsonl: str) -> list[dict]:
    """The examples of a stored JSONL part, for evaluation."""
    return [json.loads(line) for line in jsonl.splitlines() if line.strip()]


async def validate(
    client: Any,
    train: str,
    valid: str | None = None,
    *,
    model: str,
    epochs: int | None = None,
    prices: dict[str, float] | None = None,
    min_examples: int = 10,
    screen: bool = False,
    screen_despite_errors: bool = False,
    similarity: float = 0.95,
    on_screen_error: OnScreenError = OnScreenError.WARN,
) -> tuple[Report, Pairs]:
    """The offline checks, then (if asked and the data is clean) the screens.

    Returns the report and the training file's usable (line, example) pairs, so nobody
    parses the file again. Screens run on the usable examples of the training file and,
    when given, the validation file; their problems join the same report, in file and
    line order. `valid=""` is an (empty) validation file; None means there is none.
    Slack skips the screens when the offline checks already failed (the admin must fix
    the file first); the CLI screens anyway (`screen_despite_errors`), so its report
    lists everything and exit code 2 still means "a screen couldn't run".
    """
    report, pairs = await asyncio.to_thread(
        validate_and_collect,
        train,
        model=model,
        epochs=epochs,
        validation_text=valid,
        prices=prices,
        min_examples=min_examples,
    )
    if screen and (screen_despite_errors or not report.errors):
        files = {"train": pairs}
        if valid:
            files["validation"] = await asyncio.to_thread(valid_examples, valid)
        report.problems += await _screen(client, files, similarity, on_screen_error)
        order = {"train": 0, "validation": 1}
        report.problems.sort(key=lambda p: (order.get(p.file, 2), p.line))
    return report, pairs


async def _screen(
    client: Any, files: dict[str, Pairs], similarity: float, on_error: OnScreenError
) -> list[Problem]:
    problems: list[Problem] = []
    for label, check in (
        ("moderation pre-screen", screening.moderation_screen),
        ("near-duplicate check", partial(screening.find_near_duplicates, threshold=similarity)),
    ):
        try:
            for file, pairs in files.items():
                problems += await check(client, pairs, file=file)
        except Exception as exc:
            if on_error is OnScreenError.RAISE:
                raise
            log.warning("Dataset %s failed: %s", label, type(exc).__name__)
            problems.append(
                Problem(
                    line=0,
                    severity="warning",
                    code="screening_skipped",
                    message=f"The {label} was skipped: the server refused it.",
                )
            )
    return problems


async def examples_from_feedback(
    store: Store,
    team: str,
    conversations: list[str],
    *,
    persona: str = "",
    team_prompt: str = "",
) -> list[dict]:
    """Chat examples from the answers people rated 👍 (and nobody 👎), in `conversations`.

    Each example is the system prompt the answer was given under plus the turns up to the
    rated answer. `persona` keeps only conversations that ran under that persona.
    """
    examples: list[dict] = []
    for conv in conversations:
        messages, good, meta = await feedback.good_replies(store, conv)
        if not good:
            continue
        choice = personas.Choice.from_json(meta.get("persona"), "thread")
        if persona and (choice.name if choice else meta.get("last_persona", "default")) != persona:
            continue
        system = meta.get("system") or await _system_then(store, team, conv, choice, team_prompt)
        examples += datasets.conversation_examples(messages, good, system=system)
    return examples


async def _system_then(
    store: Store, team: str, conv: str, choice: personas.Choice | None, team_prompt: str
) -> str:
    """The system prompt for a thread from before the prompt was recorded with it."""
    channel = conv.split(":")[1]
    resolved = await personas.resolve(store, team, channel, choice, default_team_prompt=team_prompt)
    return resolved.system
