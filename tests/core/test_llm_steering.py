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


def test_a_personas_effort_becomes_the_nearest_one_the_model_accepts():
    assert steering_args("gpt-5-mini", temperature=None, reasoning_effort="none") == {
        "reasoning_effort": "minimal"
    }
    assert steering_args("o4-mini", temperature=None, reasoning_effort="minimal") == {
        "reasoning_effort": "low"
    }
    assert steering_args("o3", temperature=None, reasoning_effort="xhigh") == {"reasoning_effort": "high"}
    assert steering_args("gpt-5.2-2025-12-11", temperature=None, reasoning_effort="xhigh") == {
        "reasoning_effort": "xhigh"
    }
    # gpt-5-chat-latest samples: a temperature, no effort
    assert steering_args("gpt-5-chat-latest", temperature=0.2, reasoning_effort="high") == {
        "temperature": 0.2
    }


def test_a_model_chat_completions_doesnt_serve_is_refused_for_a_persona():
    import pytest

    from core import personas, tokens

    assert not tokens.model_info("gpt-5.2-pro").chat and tokens.model_info("gpt-5.2").chat
    with pytest.raises(personas.PersonaError, match="Responses API"):
        personas.make_custom("deep", "Think hard.", model="gpt-5.2-pro")
    assert tokens.model_info("gpt-5.1").efforts == ("none", "low", "medium", "high")
    assert tokens.model_info("gpt-4.1").efforts == ()
