"""Key names are stored data: their spelling, and their hash tags, must not drift."""

from __future__ import annotations

import dataclasses

import pytest

from core import keys


def test_conversation_keys_share_the_thread_hash_tag():
    conv = keys.conversation_id("T1", "C1", "1.000")
    k = keys.conversation("tw", conv)
    assert (k.msgs, k.toks, k.meta) == (
        "tw:c:{T1:C1:1.000}:msgs",
        "tw:c:{T1:C1:1.000}:toks",
        "tw:c:{T1:C1:1.000}:meta",
    )
    assert keys.feedback("tw", conv) == "tw:c:{T1:C1:1.000}:feedback"
    assert keys.seen("tw", conv, "event:E1") == "tw:c:{T1:C1:1.000}:seen:event:E1"


def test_workspace_keys_share_the_team_hash_tag():
    k = keys.workspace("tw", "T1")
    names = [f.name for f in dataclasses.fields(k)]
    assert names == [
        "personas",
        "channel_personas",
        "settings",
        "schemas",
        "audit",
        "feedback",
        "datasets",
        "jobs",
        "rated",
        "channel_models",
        "prices",
        "admins",
    ]
    assert all(getattr(k, name) == f"tw:w:{{T1}}:{name}" for name in names)
    assert keys.dataset("tw", "T1", "faq", "train") == "tw:w:{T1}:dataset:faq:train"
    assert keys.usage_day("tw", "T1", "2026-11-26") == "tw:w:{T1}:usage:d:2026-11-26"
    assert keys.usage_month("tw", "T1", "2026-11") == "tw:w:{T1}:usage:m:2026-11"
    assert keys.user_turns("tw", "T1", "U1", "2026-11-26T14") == "tw:w:{T1}:usage:h:2026-11-26T14:U1"
    assert keys.pending("tw", "T1", "tok").startswith("tw:w:{T1}:")
    assert keys.optimize_run("tw", "T1", "tok").startswith("tw:w:{T1}:")


def test_finetune_keys():
    assert keys.finetune_jobs("tw") == "tw:ft:jobs"
    assert keys.finetune_lease("tw", "ftjob-1") == "tw:ft:lease:ftjob-1"
    assert keys.finetune_refresh_lock("tw", "ftjob-1") == "tw:ft:lease:ftjob-1:refresh"


def test_key_sets_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        keys.workspace("tw", "T1").personas = "elsewhere"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        keys.conversation("tw", "T1:C1:1.0").msgs = "elsewhere"  # type: ignore[misc]
