"""Prompt optimization: improved variants of a persona's prompt, each scored.

The model proposes variants and scores them together with the original on stated
criteria. Nothing changes until an admin adopts one; the variants wait in Redis for a
day under a random token, and the Adopt button carries only that token.
"""

from __future__ import annotations

import json
import secrets

from openai import AsyncOpenAI

from core import keys, structured
from core.personas import Persona
from core.schemas import NamedSchema
from core.store import Store

CRITERIA = ("clarity", "specificity", "conciseness", "completeness")
TTL_SECONDS = 86400

_SCORES = {
    "type": "object",
    "properties": {c: {"type": "integer", "description": "1 (poor) to 10 (excellent)"} for c in CRITERIA},
    "required": list(CRITERIA),
    "additionalProperties": False,
}
SCHEMA = NamedSchema(
    "prompt_variants",
    {
        "type": "object",
        "properties": {
            "original_scores": _SCORES,
            "variants": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"prompt": {"type": "string"}, "scores": _SCORES},
                    "required": ["prompt", "scores"],
                    "additionalProperties": False,
                },
            },
        },
        "required": ["original_scores", "variants"],
        "additionalProperties": False,
    },
)

SYSTEM = (
    "You improve system prompts for a team assistant in Slack. Given a prompt, write {n} "
    "improved variants that keep its intent and any constraints, and score the original and "
    "each variant from 1 to 10 on: clarity (unambiguous wording), specificity (concrete "
    "behaviour and format), conciseness (no filler), completeness (covers what the assistant "
    "needs). Be a strict, consistent judge; do not inflate your own variants' scores."
)


async def propose(
    client: AsyncOpenAI,
    *,
    model: str,
    persona: Persona,
    n: int = 3,
    attempts: int = 4,
    spent: dict[str, int] | None = None,
) -> tuple[list[dict], str]:
    """[original, variant 1..n], each {"prompt", "scores"}; or ([], error message).
    `spent` gets the tokens used, for the usage counters."""
    answer = await structured.ask_json(
        client,
        model=model,
        system=SYSTEM.format(n=n),
        messages=[
            {"role": "user", "content": f"Persona `{persona.name}`. Prompt to improve:\n\n{persona.prompt}"}
        ],
        schema=SCHEMA,
        attempts=attempts,
    )
    if spent is not None:
        spent.update(answer.usage)
    if not answer.ok:
        return [], answer.refusal or answer.error
    clamp = {c: 0 for c in CRITERIA}
    original = {"prompt": persona.prompt, "scores": {**clamp, **answer.data["original_scores"]}}
    variants = [
        {"prompt": v["prompt"].strip(), "scores": {c: max(1, min(10, int(v["scores"][c]))) for c in CRITERIA}}
        for v in answer.data["variants"][:n]
        if v["prompt"].strip()
    ]
    original["scores"] = {c: max(1, min(10, int(original["scores"][c]))) for c in CRITERIA}
    return [original, *variants], ""


async def save_run(store: Store, team: str, persona: str, variants: list[dict]) -> str:
    token = secrets.token_urlsafe(8)
    await store.redis.set(
        keys.optimize_run(store.prefix, team, token),
        json.dumps({"persona": persona, "variants": variants}),
        ex=TTL_SECONDS,
    )
    return token


async def load_run(store: Store, team: str, token: str) -> dict | None:
    raw = await store.redis.get(keys.optimize_run(store.prefix, team, token))
    return json.loads(raw) if raw else None
