"""Which calls the response cache may answer: only greedy, single-choice ones it can read."""

from __future__ import annotations

from langchain_openai import ChatOpenAI
from pydantic import SecretStr

from service.llm.cache import call_params, is_deterministic


def _model(temperature: float | None = 0.0, **extra: object) -> ChatOpenAI:
    return ChatOpenAI(
        base_url="http://127.0.0.1:9/v1",
        api_key=SecretStr("k"),
        model="m",
        temperature=temperature,
        seed=0,
        **extra,
    )


def test_the_key_string_carries_model_endpoint_temperature_and_seed() -> None:
    params = call_params(_model()._get_llm_string(stop=None, seed=7))
    assert params is not None
    assert params["model_name"] == "m"
    assert params["openai_api_base"] == "http://127.0.0.1:9/v1"
    assert params["temperature"] == 0.0
    assert params["seed"] == 7  # the call's seed overrides the constructor's


def test_greedy_single_choice_calls_are_cacheable() -> None:
    assert is_deterministic(call_params(_model()._get_llm_string()))
    assert is_deterministic(call_params(_model(0.7)._get_llm_string(temperature=0)))


def test_sampled_calls_and_several_choices_are_not() -> None:
    assert not is_deterministic(call_params(_model()._get_llm_string(temperature=0.4)))
    assert not is_deterministic(call_params(_model(0.8)._get_llm_string()))
    assert not is_deterministic(call_params(_model()._get_llm_string(n=4)))
    assert not is_deterministic(call_params(_model(None)._get_llm_string()))  # server default


def test_an_unreadable_key_string_is_never_cached() -> None:
    assert call_params("{not json---[]") is None
    assert call_params("{\"kwargs\": {}}---[('x', <object>)]") is None
    assert not is_deterministic(None)


def test_literals_are_the_code_numbers_and_quotes_of_a_request() -> None:
    from service.llm.semantic_cache import literals

    assert literals("Write add(a, b), returning a + b. Example: add(2, 3) == 5") == [
        "add(a",
        "b)",
        "+",
        "add(2",
        "3)",
        "==",
        "5",
    ]
    assert literals("Please write add(a, b) that returns the sum.") == ["add(a", "b)"]
    assert literals("count 'Hello' words") == ["'Hello'"]
