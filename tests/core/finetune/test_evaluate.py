"""Comparing a tuned model with its base model, against the local OpenAI stand-in."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import openai
import pytest

from core.finetune.evaluate import EvalReport, compare, eval_summary, format_eval, token_f1
from tests.standins.openai_api import OpenAIStandIn, Reply

TUNED = "ft:gpt-4o-mini-2024-07-18:acme:support:abc123"
BASE = "gpt-4o-mini-2024-07-18"
JUDGE = "gpt-4.1-mini"

EXAMPLES = [
    {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello", "weight": 0},
            {"role": "user", "content": "Capital of France?"},
            {"role": "assistant", "content": "The capital is Paris"},
        ]
    },
    {
        "messages": [
            {"role": "user", "content": "Largest planet?"},
            {"role": "assistant", "content": "Jupiter is the largest planet"},
        ]
    },
    {"messages": [{"role": "user", "content": "Never asked"}, {"role": "assistant", "content": "beyond n"}]},
]
ANSWERS = {
    TUNED: {"Capital of France?": "The capital is Paris.", "Largest planet?": "Jupiter is the largest"},
    BASE: {"Capital of France?": "Paris", "Largest planet?": "Saturn"},
}


@pytest.fixture
def api(openai_api: OpenAIStandIn) -> OpenAIStandIn:
    return openai_api


@pytest.fixture
def client(openai_client: openai.AsyncOpenAI) -> openai.AsyncOpenAI:
    return openai_client


def answers_of(judge_content: str) -> tuple[str, str]:
    rest = judge_content.split("Answer A:\n", 1)[1]
    first, second = rest.split("\n\nAnswer B:\n", 1)
    return first, second


def serve(verdict: Callable[[str, str], str] | None = None) -> Callable[[dict[str, Any]], Reply]:
    """Answers by model: scripted answers for tuned/base, `verdict(A, B)` for the judge."""

    def reply(body: dict[str, Any]) -> Reply:
        if body["model"] == JUDGE:
            first, second = answers_of(body["messages"][-1]["content"])
            winner = verdict(first, second) if verdict else "tie"
            return Reply(text=json.dumps({"winner": winner, "reason": f"picked {winner}"}))
        question = body["messages"][-1]["content"]
        return Reply(text=ANSWERS[body["model"]][question])

    return reply


def pick_tuned(first: str, second: str) -> str:
    return "A" if first in ANSWERS[TUNED].values() else "B"


def test_token_f1():
    assert token_f1("The capital is Paris.", "the CAPITAL is paris") == 1.0
    assert token_f1("Paris", "The capital is Paris") == pytest.approx(0.4)
    assert token_f1("Jupiter is the largest", "Jupiter is the largest planet") == pytest.approx(8 / 9)
    assert token_f1("the the", "the") == pytest.approx(2 * 0.5 * 1 / 1.5)  # multiset overlap
    assert token_f1("Saturn", "Jupiter") == 0.0
    assert token_f1("", "") == 1.0 and token_f1("", "x") == 0.0 and token_f1("...", "x") == 0.0


async def test_compare_scores_both_models_and_maps_the_judge(api, client):
    api.default = serve(pick_tuned)
    report = await compare(client, tuned=TUNED, base=BASE, examples=EXAMPLES, n=2, judge_model=JUDGE)

    assert report.errors == [] and report.n == 2 and [r.index for r in report.rows] == [0, 1]
    first, second = report.rows
    assert (first.tuned_f1, first.base_f1) == (1.0, pytest.approx(0.4))
    assert (second.tuned_f1, second.base_f1) == (pytest.approx(8 / 9), 0.0)
    assert report.tuned_mean_f1 == pytest.approx((1 + 8 / 9) / 2)
    assert report.base_mean_f1 == pytest.approx(0.2)
    assert first.reference == "The capital is Paris" and first.prompt_preview == "Capital of France?"
    assert (first.tuned_answer, first.base_answer) == ("The capital is Paris.", "Paris")

    # The judge preferred the tuned answer both times, though it read it first, then second.
    assert [r.judge for r in report.rows] == ["tuned", "tuned"]
    assert (report.tuned_wins, report.base_wins, report.ties) == (2, 0, 0)
    assert second.judge_reason == "picked B"

    requests = api.chat_requests()
    answering = [r for r in requests if r["model"] != JUDGE]
    assert sorted((r["model"], r["messages"][-1]["content"]) for r in answering) == sorted(
        (m, q) for m in (TUNED, BASE) for q in ("Capital of France?", "Largest planet?")
    )
    assert all(r["temperature"] == 0 for r in answering)
    france = next(
        r for r in answering if r["model"] == TUNED and r["messages"][-1]["content"].startswith("Cap")
    )
    assert [m["role"] for m in france["messages"]] == ["system", "user", "assistant", "user"]
    assert all("weight" not in m for m in france["messages"])  # a training-only key the API rejects

    judged = sorted(
        (r for r in requests if r["model"] == JUDGE),
        key=lambda r: "Largest" in r["messages"][-1]["content"],
    )
    assert [answers_of(r["messages"][-1]["content"]) for r in judged] == [
        ("The capital is Paris.", "Paris"),  # example 0: tuned is A
        ("Saturn", "Jupiter is the largest"),  # example 1: base is A
    ]
    assert all(r["response_format"]["type"] == "json_schema" for r in judged)
    assert judged[0]["response_format"]["json_schema"]["strict"] is True
    assert "Reference answer:\nThe capital is Paris" in judged[0]["messages"][-1]["content"]


async def test_position_swap_maps_a_constant_verdict_back(api, client):
    api.default = serve(lambda first, second: "A")
    report = await compare(
        client, tuned=TUNED, base=BASE, examples=EXAMPLES[:2], judge_model=JUDGE, concurrency=1
    )
    assert [r.judge for r in report.rows] == ["tuned", "base"]
    assert (report.tuned_wins, report.base_wins, report.ties) == (1, 1, 0)

    api.default = serve(lambda first, second: "tie")
    report = await compare(client, tuned=TUNED, base=BASE, examples=EXAMPLES[:2], judge_model=JUDGE)
    assert [r.judge for r in report.rows] == ["tie", "tie"] and report.ties == 2


async def test_without_judge_only_answers_are_requested(api, client):
    api.default = serve()
    report = await compare(client, tuned=TUNED, base=BASE, examples=EXAMPLES[:2])
    assert {r["model"] for r in api.chat_requests()} == {TUNED, BASE}
    assert [r.judge for r in report.rows] == [None, None]
    assert eval_summary(report)["judged"] == 0


async def test_failures_are_recorded_and_the_rest_carry_on(api, client):
    answer = serve(pick_tuned)
    judge_calls = 0

    def reply(body: dict[str, Any]) -> Reply:
        nonlocal judge_calls
        if body["model"] == BASE and body["messages"][-1]["content"] == "Largest planet?":
            return Reply(status=404, error_code="model_not_found", error_message="The model does not exist")
        if body["model"] == JUDGE:
            judge_calls += 1
            return Reply(text="not json at all")
        return answer(body)

    api.default = reply
    examples = [*EXAMPLES[:2], {"messages": [{"role": "user", "content": "no answer"}]}, "junk"]
    report = await compare(client, tuned=TUNED, base=BASE, examples=examples, judge_model=JUDGE)

    assert report.n == 4 and [r.index for r in report.rows] == [0]
    assert report.rows[0].judge is None and report.rows[0].judge_reason == "judge failed"
    assert judge_calls == 2  # ask_json's one repair round, then it gives up
    assert report.errors[0].startswith("example 1: judge failed: RuntimeError: invalid JSON")
    assert report.errors[1:] == [
        "example 2: model_not_found: The model does not exist",
        "example 3: no assistant message to compare against",
        "example 4: no 'messages' list",
    ]
    assert (report.tuned_wins, report.base_wins, report.ties) == (0, 0, 0)
    assert report.tuned_mean_f1 == 1.0


async def test_nothing_scored_gives_no_means(api, client):
    report = await compare(client, tuned=TUNED, base=BASE, examples=[])
    assert report.rows == [] and report.tuned_mean_f1 == 0.0 == report.base_mean_f1
    summary = eval_summary(report)
    assert summary["scored"] == 0 and summary["tuned_mean_f1"] is None and summary["f1_delta"] is None
    assert "Mean token F1 vs reference: tuned n/a, base n/a" in format_eval(report)
    assert api.chat_requests() == []


async def test_summary_and_full_text(api, client):
    api.default = serve(pick_tuned)
    report = await compare(client, tuned=TUNED, base=BASE, examples=EXAMPLES, n=2, judge_model=JUDGE)
    summary = eval_summary(report)
    assert summary == {
        "tuned_model": TUNED,
        "base_model": BASE,
        "n": 2,
        "scored": 2,
        "judged": 2,
        "tuned_wins": 2,
        "base_wins": 0,
        "ties": 0,
        "tuned_win_rate": 1.0,
        "tuned_mean_f1": pytest.approx((1 + 8 / 9) / 2),
        "base_mean_f1": pytest.approx(0.2),
        "f1_delta": pytest.approx((1 + 8 / 9) / 2 - 0.2),
        "errors": 0,
    }
    text = format_eval(report)
    for expected in (
        f"Evaluation: {TUNED} (tuned) vs {BASE} (base)",
        "Judge: tuned wins 2, base wins 0, ties 0 (of 2 judged)",
        "Example 1: Capital of France?",
        "Reference:\n    The capital is Paris",
        "Tuned answer (F1 1.000):\n    The capital is Paris.",
        "Base answer (F1 0.400):\n    Paris",
        "Example 2: Largest planet?",
        "Judge: tuned. picked B",
    ):
        assert expected in text, expected
    assert isinstance(report, EvalReport)
