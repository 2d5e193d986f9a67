"""Moderation and near-duplicate screening against a small local OpenAI-shaped server.

The server is just enough of /v1/moderations and /v1/embeddings for a real
`openai.AsyncOpenAI` client: inputs containing "FLAGME" are flagged, and embeddings
are hashed bag-of-words vectors, so word-order variants embed identically. Like some
OpenAI-compatible servers, it can be told to answer in floats whatever was asked.
"""

from __future__ import annotations

import array
import asyncio
import base64
import hashlib
import json
import os
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import openai
import pytest
from aiohttp import web
from openai import AsyncOpenAI

from core.finetune.screening import (
    EMBEDDING_ENCODING,
    MAX_EMBEDDING_INPUT_TOKENS,
    find_near_duplicates,
    moderation_screen,
)
from core.tokens import encoding

REPO = Path(__file__).resolve().parents[3]
CATEGORIES = [
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/instructions",
    "self-harm/intent",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
]
DIMENSIONS = 64


def _moderation(text: str) -> dict:
    flagged = "FLAGME" in text
    return {
        "flagged": flagged,
        "categories": {c: flagged and c == "violence" for c in CATEGORIES},
        "category_scores": {c: 0.9 if flagged and c == "violence" else 0.0 for c in CATEGORIES},
        "category_applied_input_types": {c: ["text"] for c in CATEGORIES},
    }


def bag_of_words(text: str) -> list[float]:
    vector = [0.0] * DIMENSIONS
    for word in re.findall(r"\w+", text.lower()):
        vector[int(hashlib.sha256(word.encode()).hexdigest()[:8], 16) % DIMENSIONS] += 1.0
    return vector


@pytest.fixture
async def server():
    calls: dict[str, list[dict]] = {"moderations": [], "embeddings": []}
    options = {"floats_only": False}

    async def moderations(request: web.Request) -> web.Response:
        body = await request.json()
        calls["moderations"].append(body)
        inputs = [body["input"]] if isinstance(body["input"], str) else body["input"]
        return web.json_response(
            {"id": "modr-1", "model": body.get("model"), "results": [_moderation(t) for t in inputs]}
        )

    async def embeddings(request: web.Request) -> web.Response:
        body = await request.json()
        calls["embeddings"].append(body)
        inputs = [body["input"]] if isinstance(body["input"], str) else body["input"]
        data = []
        for index, text in reversed(list(enumerate(inputs))):  # out of order on purpose
            vector = bag_of_words(text)
            if body.get("encoding_format") == "base64" and not options["floats_only"]:
                encoded = base64.b64encode(array.array("f", vector).tobytes()).decode()
                data.append({"object": "embedding", "index": index, "embedding": encoded})
            else:
                data.append({"object": "embedding", "index": index, "embedding": vector})
        usage = {"prompt_tokens": 1, "total_tokens": 1}
        return web.json_response({"object": "list", "data": data, "model": body["model"], "usage": usage})

    app = web.Application()
    app.router.add_post("/v1/moderations", moderations)
    app.router.add_post("/v1/embeddings", embeddings)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield SimpleNamespace(url=f"http://127.0.0.1:{port}/v1", calls=calls, options=options)
    await runner.cleanup()


@pytest.fixture(params=["httpx", "aiohttp"])
async def client(server, request):
    """Both of the SDK's transports: the bot uses aiohttp (core/llm.py), the CLI the default."""
    http_client = openai.DefaultAioHttpClient() if request.param == "aiohttp" else None
    async with AsyncOpenAI(
        base_url=server.url, api_key="t", max_retries=0, http_client=http_client
    ) as client:
        yield client


def ex(user: str, assistant: str) -> dict:
    return {
        "messages": [
            {"role": "system", "content": "FLAGME is fine in instructions, which are not screened"},
            {"role": "user", "content": [{"type": "text", "text": user}]},
            {"role": "assistant", "content": assistant},
        ]
    }


async def test_moderation_flags_lines_and_messages_in_batches(server, client):
    examples = [
        (1, ex("hello", "hi")),
        (2, ex("please FLAGME", "no")),
        (4, ex("ok", "FLAGME back")),
        (5, ex("FLAGME", "FLAGME too")),
    ]
    problems = await moderation_screen(client, examples, batch=3)
    assert [(p.line, p.severity, p.code) for p in problems] == [
        (2, "error", "moderation_flagged"),
        (4, "error", "moderation_flagged"),
        (5, "error", "moderation_flagged"),
    ]
    assert problems[0].message == "flagged by moderation: message 2 (user): violence"
    assert "message 2 (user): violence; message 3 (assistant): violence" in problems[2].message
    sizes = [len(body["input"]) for body in server.calls["moderations"]]
    assert sorted(sizes) == [2, 3, 3]  # 8 user/assistant messages, 3 to a call, system left out
    assert {body["model"] for body in server.calls["moderations"]} == {"omni-moderation-latest"}
    assert await moderation_screen(client, [], batch=3) == []


async def test_near_duplicates_found_through_embeddings(server, client):
    examples = [
        (1, ex("how do I reset my password", "use the settings page")),
        (2, ex("what is the lunch menu today", "pasta and salad")),
        (3, ex("my password how do I reset", "the settings page use")),  # same words, new order
        (5, ex("how do I reset my password", "use the settings page")),  # exact duplicate of line 1
        (6, {"messages": [{"role": "system", "content": "nothing to embed"}]}),
    ]
    problems = await find_near_duplicates(client, examples, batch=2)
    assert [(p.line, p.code, p.severity) for p in problems] == [
        (3, "near_duplicate", "warning"),
        (5, "near_duplicate", "warning"),
    ]
    assert problems[0].message == "nearly the same as line 1 (cosine 1.000)"
    assert problems[1].message == "nearly the same as line 3 (cosine 1.000)"
    assert [len(body["input"]) for body in server.calls["embeddings"]] == [2, 2]
    # asked for as base64, so the vectors never become Python floats
    assert {body["encoding_format"] for body in server.calls["embeddings"]} == {"base64"}
    assert await find_near_duplicates(client, examples[:1]) == []
    server.options["floats_only"] = True
    assert await find_near_duplicates(client, examples, batch=2) == problems


async def test_a_templated_dataset_gets_the_most_alike_pairs_and_a_note(server, client):
    # one template with a number changed: every pair of the 60 is alike
    template = "how do I reset the password of my account in the settings page " * 3
    examples = [(i + 1, ex(f"{template} number {i}", "use settings")) for i in range(60)]
    problems = await find_near_duplicates(client, examples, max_pairs=25)
    assert len(problems) == 26
    assert (problems[0].line, problems[0].code) == (0, "many_near_duplicates")
    assert "more than 25 pairs" in problems[0].message
    assert {p.code for p in problems[1:]} == {"near_duplicate"}
    few = await find_near_duplicates(client, examples[:8], max_pairs=28)
    assert len(few) == 28 and "many_near_duplicates" not in {p.code for p in few}  # 8 * 7 / 2 pairs


async def test_long_inputs_are_cut_to_the_embedding_limit(server, client):
    examples = [(1, ex("word " * 9_000, "short")), (2, ex("word " * 9_000, "short!"))]
    problems = await find_near_duplicates(client, examples)
    [body] = server.calls["embeddings"]
    enc = encoding(EMBEDDING_ENCODING)
    assert [len(enc.encode(text)) for text in body["input"]] == [MAX_EMBEDDING_INPUT_TOKENS] * 2
    assert [p.line for p in problems] == [2]


async def test_cli_screen_runs_against_the_server(server, tmp_path):
    lines = [ex(f"question number {i}", f"answer number {i}") for i in range(11)]
    lines.append(ex("FLAGME question", "answer"))
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(e) + "\n" for e in lines))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env |= {"OPENAI_BASE_URL": server.url, "OPENAI_API_KEY": "t"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "core.finetune",
        "validate",
        str(data),
        "--screen",
        "--similarity",
        "0.99",
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 1, stderr.decode()
    assert "line 12: flagged by moderation: message 2 (user): violence" in stdout.decode()
    assert server.calls["moderations"] and server.calls["embeddings"]
