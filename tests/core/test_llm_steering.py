"""Which temperature and reasoning parameters each kind of model is sent."""

from __future__ import annotations

from core.llm import steering_args


def test_sampling_models_get_temperature_and_never_reasoning_effort():
    assert steering_args("gpt-4.1-mini", temperature=0.3, reasoning_effort="high") == {"temperature": 0.3}


def test_reasoning_models_get_reasoning_effort_and_never_temperature():
    assert steering_args("gpt-5-mini", temperature=0.3, reasoning_effort="low") == {"reasoning_effort": "low"}
    assert steering_args("o3", temperature=1.0, reasoning_effort=None) == {}


def test_models_that_reason_on_request_take_temperature_only_while_not_reasoning():
    assert steering_args("gpt-5.1", temperature=0.3, reasoning_effort=None) == {"temperature": 0.3}
    assert steering_args("gpt-5.1", temperature=0.3, reasoning_effort="none") == {
        "reasoning_effort": "none",
        "temperature": 0.3,
    }
    assert steering_args("gpt-5.2", temperature=0.3, reasoning_effort="medium") == {
        "reasoning_effort": "medium"
    }


def test_unknown_models_get_temperature_only():
    assert steering_args("llama-3-8b", temperature=0.7, reasoning_effort="high") == {"temperature": 0.7}
