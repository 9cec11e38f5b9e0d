"""Price table and cost arithmetic: what an operator configures is what a task is charged."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from graphs.state import Usage, add_usage
from service.llm.prices import account, cost_usd, local_price, price_of
from service.llm.scripted import Script, ScriptedChatModel
from service.settings import ModelPrice, Settings


def test_a_configured_price_is_per_million_prompt_and_completion_tokens() -> None:
    price = ModelPrice(prompt_per_mtok=0.15, completion_per_mtok=0.60)
    assert cost_usd(price, 1_000_000, 0) == pytest.approx(0.15)
    assert cost_usd(price, 2_000, 500) == pytest.approx(0.0003 + 0.0003)


def test_the_bundled_model_is_priced_by_its_measured_cpu_seconds() -> None:
    settings = Settings(local_cpu_second_usd=0.00001, llama_threads=2)
    price = local_price(settings)
    # 2 cores / 150 tok/s and 2 cores / 12.3 tok/s CPU-seconds per token, at $0.00001 each.
    assert price.prompt_per_mtok == pytest.approx(1e6 * 2 / 150 * 1e-5)
    assert price.completion_per_mtok == pytest.approx(1e6 * 2 / 12.3 * 1e-5)
    assert price_of("qwen", settings, local=True) == price


def test_the_table_wins_and_an_unknown_remote_model_is_visibly_free() -> None:
    table = {"big": ModelPrice(prompt_per_mtok=3, completion_per_mtok=15)}
    settings = Settings(model_prices=table)
    assert price_of("big", settings, local=True).completion_per_mtok == 15
    assert price_of("unknown", settings, local=False).prompt_per_mtok == 0


def test_prices_come_from_json_settings_and_bad_ones_are_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "STRATEGOS_MODEL_PRICES", '{"m": {"prompt_per_mtok": 1, "completion_per_mtok": 2}}'
    )
    assert Settings().model_prices["m"].completion_per_mtok == 2
    monkeypatch.setenv("STRATEGOS_MODEL_PRICES", '{"m": {"prompt_per_mtok": -1}}')
    with pytest.raises(ValidationError):
        Settings()


def test_cost_adds_up_across_calls_and_old_usage_still_adds() -> None:
    old: Usage = {"model_calls": 2, "prompt_tokens": 10, "completion_tokens": 5}
    new: Usage = {"model_calls": 1, "prompt_tokens": 1, "completion_tokens": 1, "cost_usd": 0.25}
    assert add_usage(old, new)["cost_usd"] == 0.25
    assert add_usage(add_usage(old, new), new)["cost_usd"] == 0.5
    assert "cost_usd" not in add_usage(old, old)  # a checkpoint without costs stays as it was


def test_account_prices_a_call_at_its_model_and_keeps_a_routed_price() -> None:
    model = ScriptedChatModel(script=Script(rules=[]))
    settings = Settings(
        model_prices={"scripted": ModelPrice(prompt_per_mtok=1e6, completion_per_mtok=2e6)}
    )
    usage: Usage = {"model_calls": 1, "prompt_tokens": 3, "completion_tokens": 2}
    charged = account(usage, model, settings, local_url=None, node="coder", tenant="t")
    assert charged["cost_usd"] == pytest.approx(3 * 1 + 2 * 2)
    routed: Usage = {**usage, "cost_usd": 0.5}
    assert account(routed, model, settings, local_url=None, node="c", tenant="t") == routed
