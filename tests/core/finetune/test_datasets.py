"""Building fine-tuning examples from rated conversations and Q&A files."""

from __future__ import annotations

import json

import pytest

from core.finetune.datasets import conversation_examples, qa_examples, to_jsonl
from core.finetune.validate import validate_dataset

SYSTEM = "You are Threadwise."


def sys_msg() -> dict:
    return {"role": "system", "content": SYSTEM}


HISTORY = [
    {"role": "user", "content": "What is Redis?", "tokens": 8, "ts": "1.1", "user": "U1"},
    {"role": "assistant", "content": "An in-memory data store.", "tokens": 9},
    {"role": "user", "content": "And Valkey?", "tokens": 7, "ts": "1.2", "user": "U2"},
    {"role": "assistant", "content": "A fork of Redis.\n[answer interrupted]", "tokens": 9},
    {"role": "user", "content": "Is it compatible?", "tokens": 7, "ts": "1.3", "user": "U1"},
    {"role": "assistant", "content": "Yes, redis-py talks to it unchanged.", "tokens": 11},
]


def test_conversation_examples_keep_history_up_to_each_rated_answer():
    examples = conversation_examples(HISTORY, [5, 1, 1], system=SYSTEM)
    assert examples == [
        {
            "messages": [
                sys_msg(),
                {"role": "user", "content": "What is Redis?"},
                {"role": "assistant", "content": "An in-memory data store."},
            ]
        },
        {
            "messages": [
                sys_msg(),
                {"role": "user", "content": "What is Redis?"},
                {"role": "assistant", "content": "An in-memory data store.", "weight": 0},
                {"role": "user", "content": "And Valkey?"},
                # the marker is ours, not the model's: stripped from context
                {"role": "assistant", "content": "A fork of Redis.", "weight": 0},
                {"role": "user", "content": "Is it compatible?"},
                {"role": "assistant", "content": "Yes, redis-py talks to it unchanged."},
            ]
        },
    ]


def test_conversation_examples_skip_what_is_not_a_good_answer():
    # 0 is a user message, 3 was interrupted, 9 and -1 are out of range
    assert conversation_examples(HISTORY, [0, 3, 9, -1], system=SYSTEM) == []
    answer_to_nothing = [{"role": "assistant", "content": "Hello!"}]
    assert conversation_examples(answer_to_nothing, [0], system=SYSTEM) == []
    empty = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "  "}]
    assert conversation_examples(empty, [1], system=SYSTEM) == []


def test_conversation_examples_without_system_prompt():
    [example] = conversation_examples(HISTORY[:2], [1], system="")
    assert [m["role"] for m in example["messages"]] == ["user", "assistant"]


def test_conversation_examples_pass_the_validator():
    history = []
    for i in range(10):
        history += [
            {"role": "user", "content": f"question {i}", "ts": str(i)},
            {"role": "assistant", "content": f"answer {i}"},
        ]
    rated = list(range(1, 20, 2))
    text = to_jsonl(conversation_examples(history, rated, system=SYSTEM))
    report = validate_dataset(text, model="gpt-4o-mini-2024-07-18")
    assert report.ok and report.n_valid == 10, report.problems


def qa(question: str, answer: str, context: str = "") -> dict:
    user = f"Context:\n{context}\n\nQuestion: {question}" if context else question
    return {
        "messages": [sys_msg(), {"role": "user", "content": user}, {"role": "assistant", "content": answer}]
    }


def test_qa_csv_with_context_quotes_and_problems():
    text = (
        "\ufeffQuestion,Answer,Context\r\n"
        'How do I reset my password?,"Use the ""Forgot password"" link.",\r\n'
        '"Where is the office?","Second floor,\nroom 12.",Building A\r\n'
        ",Orphan answer,\r\n"
        "\r\n"
        "No answer here,,\r\n"
    )
    examples, problems = qa_examples(text, fmt="csv", system=SYSTEM)
    assert examples == [
        qa("How do I reset my password?", 'Use the "Forgot password" link.'),
        qa("Where is the office?", "Second floor,\nroom 12.", "Building A"),
    ]
    # the quoted answer spans lines 3-4, so the orphan is on line 5; line 6 is blank
    assert problems == ["row 3 (line 5): missing question", "row 4 (line 7): missing answer"]


def test_qa_csv_semicolons_and_tabs():
    semi = "question;answer\nWhat is 1+1?;2\nCapital of France?;Paris, of course\n"
    examples, problems = qa_examples(semi, fmt="csv", system=SYSTEM)
    assert problems == [] and examples == [
        qa("What is 1+1?", "2"),
        qa("Capital of France?", "Paris, of course"),
    ]

    tabs = "context\tquestion\tanswer\nDocs\tWhere?\tHere.\n"
    examples, problems = qa_examples(tabs, fmt="csv", system=SYSTEM)
    assert problems == [] and examples == [qa("Where?", "Here.", "Docs")]


def test_qa_csv_without_the_needed_columns():
    examples, problems = qa_examples("prompt,completion\nhi,hello\n", fmt="csv", system=SYSTEM)
    assert examples == []
    assert problems == [
        "line 1: the header needs 'question' and 'answer' columns (found: prompt, completion)"
    ]


def test_qa_jsonl_with_problems_and_line_numbers():
    lines = [
        json.dumps({"question": "Q1?", "answer": "A1."}),
        "",
        json.dumps({"question": "Q2?", "answer": 42, "context": "Numbers"}),
        '{"question": "broken", ',
        json.dumps(["not", "an", "object"]),
        json.dumps({"question": "Q3?"}),
        json.dumps({"question": {"nested": True}, "answer": "x"}),
    ]
    examples, problems = qa_examples("\n".join(lines), fmt="jsonl", system=SYSTEM)
    assert examples == [qa("Q1?", "A1."), qa("Q2?", "42", "Numbers")]
    assert len(problems) == 4
    assert problems[0].startswith("line 4: invalid JSON")
    assert problems[1:] == [
        "line 5: expected a JSON object with question and answer",
        "line 6: missing answer",
        "line 7: question, answer and context must be text",
    ]


def test_qa_unknown_format():
    with pytest.raises(ValueError, match="unknown format 'xlsx'"):
        qa_examples("", fmt="xlsx", system=SYSTEM)


def test_to_jsonl_is_compact_and_keeps_unicode():
    examples = [qa("Où?", "Ici ✓"), qa("2", "3")]
    text = to_jsonl(examples)
    assert text.endswith("\n") and text.count("\n") == 2
    first = text.split("\n")[0]
    assert "Où?" in first and "✓" in first and ": " not in first and ", " not in first
    assert [json.loads(line) for line in text.splitlines()] == examples
    assert to_jsonl([]) == ""
