"""The offline dataset validator: format checks, statistics, billing, duplicates, splits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.finetune.budget import recommend_epochs
from core.finetune.dedupe import _similar_pairs_python
from core.finetune.render import line_ranges
from core.finetune.validate import (
    PRICES_PER_1M_TRAINING_TOKENS,
    Problem,
    example_text,
    format_report,
    near_duplicates,
    parse_jsonl,
    report_to_dict,
    split_dataset,
    validate_dataset,
)
from core.tokens import encoding

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).resolve().parents[3]
O200K = encoding("o200k_base")


def ex(*messages: dict, **top: object) -> dict:
    return {"messages": list(messages), **top}


def sys_(text: str = "Be brief.") -> dict:
    return {"role": "system", "content": text}


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def bot(text: str, **extra: object) -> dict:
    return {"role": "assistant", "content": text, **extra}


def jsonl(examples: list) -> str:
    return "".join(json.dumps(e) + "\n" for e in examples)


def distinct(n: int) -> list[dict]:
    return [ex(sys_(), user(f"question number {i}"), bot(f"answer number {i}")) for i in range(n)]


def codes(report, file: str = "train") -> set[tuple[int, str]]:
    return {(p.line, p.code) for p in report.problems if p.file == file}


def per_line(report) -> set[tuple[int, str]]:
    """Problems on lines, leaving out the dataset-wide ones (line 0)."""
    return {(line, code) for line, code in codes(report) if line}


def cookbook_tokens(example: dict) -> int:
    """The cookbook formula, written out independently of the code under test."""
    total = 3
    for message in example["messages"]:
        total += 3 + sum(len(O200K.encode(v)) for v in message.values() if isinstance(v, str))
        total += 1 if "name" in message else 0
    return total


# --- parsing -----------------------------------------------------------------------


def test_parse_jsonl_keeps_line_numbers_and_skips_blank_lines():
    records, problems = parse_jsonl('{"a": 1}\n\n  \n{"b": 2}\r\n{oops}\n')
    assert records == [(1, {"a": 1}), (4, {"b": 2})]
    assert [(p.line, p.code, p.severity) for p in problems] == [(5, "invalid_json", "error")]
    assert "column 2" in problems[0].message


def test_parse_jsonl_does_not_split_inside_strings_on_unicode_line_separators():
    records, problems = parse_jsonl(json.dumps({"t": "a\u2028b"}, ensure_ascii=False) + "\n")
    assert problems == [] and records == [(1, {"t": "a\u2028b"})]


def test_parse_jsonl_flags_pretty_printed_files_and_bom():
    records, problems = parse_jsonl('\ufeff{\n  "messages": []\n}\n')
    assert records == []
    assert [(p.line, p.code) for p in problems] == [
        (1, "bom"),
        (1, "invalid_json"),
        (2, "invalid_json"),
        (3, "invalid_json"),
    ]
    assert "pretty-printed" in problems[1].message


# --- a good dataset ------------------------------------------------------------------


def test_good_dataset_has_no_errors_and_expected_stats():
    text = (DATA / "good.jsonl").read_text()
    report = validate_dataset(text)
    examples = [json.loads(line) for line in text.splitlines()]

    assert report.ok and report.errors == []
    assert codes(report) == {(0, "few_examples")}  # 12 < the recommended 50
    assert (report.n_lines, report.n_examples, report.n_valid) == (12, 12, 12)
    assert (report.model, report.base_model, report.encoding) == (
        "gpt-4.1-mini-2025-04-14",
        "gpt-4.1-mini-2025-04-14",
        "o200k_base",
    )
    assert report.token_limit == 65_536
    assert (report.messages.min, report.messages.max, report.messages.mean, report.messages.median) == (
        3,
        3,
        3,
        3,
    )
    totals = sorted(cookbook_tokens(e) for e in examples)
    assert (report.total_tokens.min, report.total_tokens.max) == (totals[0], totals[-1])
    assert report.total_tokens.mean == pytest.approx(sum(totals) / 12)
    assert report.assistant_tokens.max == max(
        len(O200K.encode(e["messages"][2]["content"])) for e in examples
    )
    # 12 x 3 = 36 < 100 example passes, so epochs = min(25, 100 // 12) = 8
    assert report.recommended_epochs == report.epochs == 8
    assert report.billed_tokens == sum(totals) * 8
    assert report.price_per_1m == 5.00
    assert report.estimated_cost == pytest.approx(sum(totals) * 8 * 5.00 / 1e6)
    assert report.n_over_limit == 0 and report.duplicates == [] and report.overlap == []


def test_billed_tokens_for_a_tiny_hand_counted_example():
    # o200k_base: "user", "hi", "assistant", "hello" are one token each, so
    # 3 (priming) + (3 + 1 + 1) + (3 + 1 + 1) = 13 tokens, 1 of them assistant.
    assert [len(O200K.encode(w)) for w in ("user", "hi", "assistant", "hello")] == [1, 1, 1, 1]
    text = jsonl([ex(user("hi"), bot("hello"))])
    report = validate_dataset(text, epochs=2)
    assert report.total_tokens.max == 13 and report.assistant_tokens.max == 1
    assert report.recommended_epochs == 25  # 100 // 1, capped at 25
    assert report.epochs == 2 and report.billed_tokens == 26
    assert report.estimated_cost == pytest.approx(26 * 5.00 / 1e6)
    assert validate_dataset(text).billed_tokens == 13 * 25
    # a name costs one more token than its text
    named = validate_dataset(jsonl([ex(user("hi") | {"name": "bob"}, bot("hello"))]), epochs=1)
    assert named.total_tokens.max == 13 + len(O200K.encode("bob")) + 1


def test_epoch_heuristic_matches_the_cookbook():
    assert [recommend_epochs(n) for n in (1, 4, 12, 33, 34, 100, 8333, 8334, 30_000)] == [
        25,
        25,
        8,
        3,
        3,
        3,
        3,
        2,
        1,
    ]


def test_price_table_and_override():
    assert PRICES_PER_1M_TRAINING_TOKENS["gpt-4.1-nano-2025-04-14"] == 1.50
    text = jsonl(distinct(10))
    assert validate_dataset(text, model="gpt-4o-mini-2024-07-18").price_per_1m == 3.00
    assert validate_dataset(text, model="gpt-4.1-mini").price_per_1m == 5.00  # undated alias
    cheap = validate_dataset(text, prices={"gpt-4.1-mini": 1.0}, epochs=1)
    assert cheap.estimated_cost == pytest.approx(cheap.billed_tokens / 1e6)
    unknown = validate_dataset(text, model="llama-3-8b")
    assert unknown.price_per_1m is None and unknown.estimated_cost is None
    assert "Estimated cost: unknown" in format_report(unknown)


# --- a broken dataset ----------------------------------------------------------------


def test_broken_dataset_reports_each_problem_on_its_line():
    report = validate_dataset((DATA / "broken.jsonl").read_text())
    assert codes(report) == {
        (0, "too_few_examples"),
        (1, "invalid_json"),
        (2, "not_a_dict"),
        (3, "missing_messages"),
        (4, "unknown_role"),
        (5, "missing_content"),
        (6, "unknown_message_key"),
        (7, "no_assistant"),
        (8, "bad_weight"),
        (9, "missing_tool_call_id"),
        (11, "bad_content"),
        (12, "weight_not_assistant"),
        (13, "invalid_json"),
    }
    assert all(p.severity == "error" for p in report.problems)
    assert not report.ok
    assert (report.n_lines, report.n_examples, report.n_valid) == (12, 10, 0)
    assert report.billed_tokens == 0


def test_format_errors_beyond_the_cookbook():
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    cases = {
        1: (
            ex(sys_(), user("u"), bot("a", tool_calls=[{"id": "c1", "type": "function", "function": {}}])),
            "bad_tool_calls",
        ),
        2: (ex(sys_(), user("u"), bot("a", tool_calls={"id": "x"})), "bad_tool_calls"),
        3: (ex(sys_(), {"role": "user", "content": "u", "tool_calls": [call]}, bot("a")), "bad_tool_calls"),
        4: (ex(sys_(), user("u"), bot("a", tool_calls=[call | {"type": "code"}])), "bad_tool_calls"),
        5: (ex(sys_(), user("u"), bot("a", weight=True)), "bad_weight"),
        6: (ex(sys_(), user("u"), bot("a", weight=1.0)), "bad_weight"),
        7: (ex(sys_(), {"role": "user", "content": [{"type": "audio"}]}, bot("a")), "bad_content"),
        8: (ex(sys_(), user("u"), bot("a"), tools="f"), "bad_tools"),
        9: (ex(sys_(), {"role": "user", "name": 3, "content": "u"}, bot("a")), "bad_name"),
        10: (ex(sys_(), user("u"), {"role": "assistant"}), "missing_content"),
        11: (ex(sys_(), user("u"), {"content": "x"}, bot("a")), "missing_role"),
        12: (ex(sys_(), "hello", user("u"), bot("a")), "message_not_dict"),
        13: (
            ex(sys_(), {"role": "user", "content": "u", "tool_call_id": "c1"}, bot("a")),
            "bad_tool_call_id",
        ),
    }
    text = "\n".join(json.dumps(example) for example, _ in cases.values())
    report = validate_dataset(text, min_examples=1)
    assert per_line(report) == {(line, code) for line, (_, code) in cases.items()}


def test_warnings_for_likely_mistakes():
    call = {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "not json"}}
    cases = {
        1: (ex(user("u"), bot("a")), {"no_system"}),
        2: (ex(sys_(), bot("a")), {"no_user"}),
        3: (ex(sys_(), user("u"), bot("a"), user("and then?")), {"last_not_assistant"}),
        4: (ex(sys_(), user("u"), bot("a"), source="crm"), {"unknown_top_level_key"}),
        5: (ex(sys_(), user("v"), bot("a", weight=0)), {"no_trained_assistant"}),
        6: (ex(sys_(), user(" "), bot("a")), {"empty_content"}),
        7: (
            ex(sys_(), user("u"), {"role": "assistant", "tool_calls": [call]}, tools=[_tool("search")]),
            {"tool_arguments_not_json", "unknown_tool"},
        ),
        8: (
            ex(sys_(), user("u"), {"role": "tool", "tool_call_id": "nope", "content": "1"}, bot("a")),
            {"unknown_tool_call_id"},
        ),
        9: ({"prompt": "p", "completion": "c"}, {"missing_messages", "unknown_top_level_key"}),
    }
    report = validate_dataset("\n".join(json.dumps(e) for e, _ in cases.values()), min_examples=1)
    assert per_line(report) == {(line, code) for line, (_, found) in cases.items() for code in found}
    assert sorted(p.severity for p in report.problems if p.line == 9) == ["error", "warning", "warning"]
    assert "legacy" in next(p.message for p in report.problems if p.code == "missing_messages")


def _tool(name: str) -> dict:
    return {
        "type": "function",
        "function": {"name": name, "parameters": {"type": "object", "properties": {}}},
    }


def test_developer_tool_roles_weights_and_content_parts_are_accepted():
    call = {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"q": "x"}'}}
    example = ex(
        {"role": "developer", "content": "Use tools."},
        {"role": "user", "content": [{"type": "text", "text": "find x"}]},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "x is 42"},
        bot("draft", weight=0),
        user("and?"),
        bot("x is 42", weight=1),
        tools=[_tool("lookup")],
        parallel_tool_calls=False,
    )
    report = validate_dataset(jsonl([example]), min_examples=1)
    assert codes(report) == {(0, "few_examples")}
    # assistant tokens: the tool call and the trained reply, not the weight-0 draft
    expected = sum(len(O200K.encode(t)) for t in ("lookup", '{"q": "x"}', "x is 42"))
    assert report.assistant_tokens.max == expected
    # totals include content parts, tool calls and tool definitions on top of the string values
    assert report.total_tokens.max > cookbook_tokens(example) + len(O200K.encode("find x"))


# --- dataset-wide checks -------------------------------------------------------------


def test_fewer_than_ten_examples_is_an_error_and_fewer_than_fifty_a_warning():
    nine = validate_dataset(jsonl(distinct(9)))
    assert codes(nine) == {(0, "too_few_examples")} and not nine.ok
    assert "add 1 more" in nine.errors[0].message
    assert codes(validate_dataset(jsonl(distinct(10)))) == {(0, "few_examples")}
    assert codes(validate_dataset(jsonl(distinct(50)))) == set()
    assert validate_dataset(jsonl(distinct(3)), min_examples=3).ok


def test_exact_duplicates_ignore_whitespace_but_not_wording():
    examples = distinct(12)
    spaced = ex(sys_(), user("question   number 1 "), bot("answer number 1"))
    reworded = ex(sys_(), user("question number 1?"), bot("answer number 1"))
    report = validate_dataset(jsonl([*examples, examples[1], spaced, reworded]))
    assert report.duplicates == [[2, 13, 14]]
    assert {(p.line, p.code) for p in report.warnings if p.code == "duplicate"} == {
        (13, "duplicate"),
        (14, "duplicate"),
    }
    assert "same as line 2" in next(p.message for p in report.problems if p.line == 13)


def test_validation_file_is_checked_and_overlap_reported():
    train = distinct(12)
    valid = [ex(sys_(), user("held out"), bot("yes")), train[2], "oops"]
    report = validate_dataset(jsonl(train), validation_text=jsonl(valid))
    assert report.validation_examples == 3
    assert report.overlap == [(3, 2)]
    assert (3, "train_validation_overlap") in codes(report)
    assert codes(report, "validation") == {(3, "not_a_dict")}
    assert not report.ok  # an error in the validation file blocks the job too
    text = format_report(report)
    assert "validation line 3" in text and "Train/validation overlap: 1" in text
    # a validation file with nothing usable is an error of its own
    empty = validate_dataset(jsonl(train), validation_text="\n")
    assert codes(empty, "validation") == {(0, "no_validation_examples")}


def test_over_limit_examples_are_listed_and_billed_at_the_limit():
    long_text = "hello" + " hello" * 69_999
    assert len(O200K.encode(long_text)) == 70_000
    examples = distinct(10)
    examples.insert(3, ex(sys_(), user("Repeat after me."), bot(long_text)))
    report = validate_dataset(jsonl(examples), epochs=1)
    assert report.n_over_limit == 1 and report.over_limit_lines == [4]
    assert (4, "over_limit") in codes(report)
    assert report.ok  # OpenAI truncates rather than rejects
    others = sum(cookbook_tokens(e) for i, e in enumerate(examples) if i != 3)
    assert report.total_tokens.max == cookbook_tokens(examples[3])
    assert report.billed_tokens == others + 65_536


def test_nano_has_a_smaller_limit():
    examples = distinct(10)
    examples.append(ex(sys_(), user("Repeat."), bot("hello" + " hello" * 39_999)))
    assert validate_dataset(jsonl(examples), model="gpt-4.1-mini-2025-04-14").n_over_limit == 0
    nano = validate_dataset(jsonl(examples), model="gpt-4.1-nano-2025-04-14", epochs=1)
    assert nano.token_limit == 32_768 and nano.over_limit_lines == [11]
    assert nano.billed_tokens == sum(cookbook_tokens(e) for e in examples[:10]) + 32_768


def test_fine_tuned_model_names_resolve_through_their_base():
    report = validate_dataset(jsonl(distinct(10)), model="ft:gpt-4.1-nano-2025-04-14:acme:threadwise:abc123")
    assert report.base_model == "gpt-4.1-nano-2025-04-14"
    assert (report.encoding, report.token_limit, report.price_per_1m) == ("o200k_base", 32_768, 1.50)
    assert "(base gpt-4.1-nano-2025-04-14)" in format_report(report)


def test_epochs_must_be_positive():
    with pytest.raises(ValueError):
        validate_dataset(jsonl(distinct(10)), epochs=0)


# --- split ---------------------------------------------------------------------------


def test_split_is_deterministic_disjoint_and_complete():
    examples = distinct(40)
    train, valid = split_dataset(examples, validation_fraction=0.25, seed=7)
    assert (train, valid) == split_dataset(examples, validation_fraction=0.25, seed=7)
    assert len(valid) == 10 and len(train) == 30
    keys = [json.dumps(e) for e in examples]
    assert sorted(map(json.dumps, train + valid)) == sorted(keys)
    assert not set(map(json.dumps, train)) & set(map(json.dumps, valid))
    assert train == [e for e in examples if e in train]  # original order kept
    assert split_dataset(examples, validation_fraction=0.25, seed=8) != (train, valid)


def test_split_sizes_and_duplicates():
    assert len(split_dataset(distinct(10), validation_fraction=0.01)[1]) == 1
    assert split_dataset(distinct(5), validation_fraction=0.1) == (distinct(5), [])
    assert split_dataset([], validation_fraction=0.5) == ([], [])
    copies = [distinct(1)[0]] * 5 + distinct(20)[1:]
    train, valid = split_dataset(copies, validation_fraction=0.5, seed=1)
    assert copies[0] not in train or copies[0] not in valid
    with pytest.raises(ValueError):
        split_dataset(copies, validation_fraction=1.0)


def test_split_does_not_depend_on_the_hash_seed():
    code = (
        "import json; from core.finetune.validate import split_dataset; "
        "ex=[{'messages':[{'role':'user','content':f'q{i}'}]} for i in range(30)]; "
        "print(json.dumps(split_dataset(ex, seed=3)[1]))"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            cwd=REPO,
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2")
    }
    assert len(outputs) == 1


# --- near duplicates -----------------------------------------------------------------


def test_near_duplicates_with_hand_made_vectors():
    examples = [ex(user(f"q{i}"), bot("a")) for i in range(5)]
    vectors = [[1.0, 0.0, 0.0], [0.99, 0.1, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [2.0, 0.0, 0.0]]
    pairs = near_duplicates(examples, vectors, threshold=0.95)
    assert [(i, j) for i, j, _ in pairs] == [(0, 4), (0, 1), (1, 4)]
    assert pairs[0][2] == pytest.approx(1.0)
    assert pairs[1][2] == pytest.approx(0.99 / (0.99**2 + 0.01) ** 0.5)
    assert sorted(_similar_pairs_python(vectors, 0.95)) == sorted(pairs)  # numpy and fallback agree
    assert near_duplicates(examples, vectors, threshold=0.999) == [(0, 4, pytest.approx(1.0))]
    # exact duplicates are reported by validate_dataset, so skipped here unless asked
    same = [examples[0], examples[0]]
    assert near_duplicates(same, [[1.0], [1.0]]) == []
    assert near_duplicates(same, [[1.0], [1.0]], skip_exact=False) == [(0, 1, 1.0)]
    with pytest.raises(ValueError):
        near_duplicates(examples, vectors[:2])


def test_example_text_leaves_out_instructions():
    call = {"id": "c", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
    example = ex(
        sys_("secret rules"), user("find x"), {"role": "assistant", "content": None, "tool_calls": [call]}
    )
    assert example_text(example) == "user: find x\nassistant: lookup({})"


# --- report --------------------------------------------------------------------------


def test_report_text_and_json():
    report = validate_dataset((DATA / "broken.jsonl").read_text())
    text = format_report(report)
    assert text.startswith("FAILED: 13 errors, 0 warnings")
    assert "line 4: message 2: unrecognized role 'bot'" in text
    assert "whole train file" in text and "Distributions:" in text and "Epochs: 3" in text
    data = json.loads(json.dumps(report_to_dict(report)))
    assert data["ok"] is False and data["n_errors"] == 13
    assert {"line": 2, "severity": "error", "code": "not_a_dict"}.items() <= data["problems"][2].items()


def test_many_problems_of_one_kind_are_summarized_as_line_ranges():
    report = validate_dataset(jsonl([ex(user(f"u{i}"), bot("a")) for i in range(30)]))
    text = format_report(report)
    assert "[no_system] x30" in text and "... and 20 more on lines 11-30" in text
    assert line_ranges([9, 1, 2, 3, 7, 10]) == "1-3, 7, 9-10"


def test_problem_defaults_to_the_training_file():
    assert Problem(3, "error", "x", "m").file == "train"


@pytest.mark.parametrize("role", [["user"], {"role": "user"}, 7, None])
def test_a_role_that_isnt_a_string_is_an_error_not_a_crash(role):
    """Uploaded files are hostile input: a list or object where a role belongs gets a line
    error, never a TypeError that leaves the admin without a report."""
    good = json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]})
    odd = json.dumps({"messages": [{"role": role, "content": "q"}, {"role": "assistant", "content": "a"}]})
    report = validate_dataset("\n".join([odd] + [good] * 12), model="gpt-4.1-mini-2025-04-14")
    assert [p.line for p in report.errors] == [1]
    assert report.errors[0].code in {"unknown_role", "missing_role"}
