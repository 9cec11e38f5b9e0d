"""Routing over real loopback HTTP: a throttled, slow or broken endpoint hands the call on.

Two scripted OpenAI-compatible servers on 127.0.0.1 play a cheap endpoint and a strong one.
The service's model factory builds the router from the settings; the team's `ask_text` path
makes the call, so the answer, its price and the metrics are what a task would record.
"""

from __future__ import annotations

from typing import Any

import openai
import pytest
from langchain_openai import ChatOpenAI
from prometheus_client import REGISTRY

from bench.mixed.fake_openai import FakeEndpoint, serving
from service.llm.models import chat_model, usage_of
from service.llm.routing import RoutedChatModel
from service.settings import ModelEndpoint, ModelPrice, Settings
from service.team_deps import ServiceDeps


def _answer(name: str) -> Any:
    return lambda body: f"answer from {name}"


def _settings(cheap: FakeEndpoint, strong: FakeEndpoint, **extra: Any) -> Settings:
    def endpoint(e: FakeEndpoint, strength: int, price: float) -> ModelEndpoint:
        return ModelEndpoint(
            name=e.name,
            base_url=e.url,
            model=f"{e.name}-model",
            strength=strength,
            price=ModelPrice(prompt_per_mtok=price, completion_per_mtok=price * 4),
        )

    return Settings(
        model_endpoints=[endpoint(cheap, 0, 0.1), endpoint(strong, 2, 5.0)],
        model_max_retries=3,  # a routed endpoint ignores it: the next endpoint is the retry
        **extra,
    )


def _fallbacks(endpoint: str) -> float:
    value = REGISTRY.get_sample_value("strategos_model_fallbacks_total", {"endpoint": endpoint})
    return value or 0.0


@pytest.mark.parametrize(
    ("failure", "extra"),
    [
        ({"fail_first": 1, "fail_status": 429}, {}),
        ({"fail_first": 1, "fail_status": 503}, {}),
        ({"latency_s": 3.0}, {"request_timeout_s": 0.5}),
    ],
    ids=["429", "5xx", "timeout"],
)
async def test_a_failing_cheap_endpoint_falls_back_to_the_next(
    failure: dict[str, Any], extra: dict[str, Any]
) -> None:
    cheap = FakeEndpoint("cheap", _answer("cheap"), **failure)
    strong = FakeEndpoint("strong", _answer("strong"))
    with serving(cheap, strong):
        settings = _settings(cheap, strong, **extra)
        model = chat_model(settings)
        assert isinstance(model, RoutedChatModel)
        before = _fallbacks("cheap")
        text, usage = await ServiceDeps(settings).ask_text(
            model, "# role: supervisor@1\nroute", "which next?", temperature=0.0, seed=0
        )
    assert text == "answer from strong"
    assert len(cheap.requests) == 1  # tried once, not retried by the client
    assert len(strong.requests) == 1
    assert _fallbacks("cheap") == before + 1
    # Priced at the endpoint that answered: $5 / $20 per million tokens.
    expected = (usage["prompt_tokens"] * 5.0 + usage["completion_tokens"] * 20.0) / 1e6
    assert usage["cost_usd"] == pytest.approx(expected)


async def test_the_cheap_endpoint_answers_easy_calls_when_it_is_up() -> None:
    cheap = FakeEndpoint("cheap", _answer("cheap"))
    strong = FakeEndpoint("strong", _answer("strong"))
    with serving(cheap, strong):
        settings = _settings(cheap, strong)
        text, usage = await ServiceDeps(settings).ask_text(
            chat_model(settings), "# role: tester@1\nplan", "cases?", temperature=0.0, seed=0
        )
    assert text == "answer from cheap"
    assert strong.requests == []
    assert cheap.requests[0]["model"] == "cheap-model"


async def test_when_every_endpoint_throttles_the_call_fails_with_the_429() -> None:
    cheap = FakeEndpoint("cheap", _answer("cheap"), fail_first=99)
    strong = FakeEndpoint("strong", _answer("strong"), fail_first=99)
    with serving(cheap, strong):
        settings = _settings(cheap, strong)
        with pytest.raises(openai.RateLimitError):
            await ServiceDeps(settings).ask_text(
                chat_model(settings), "# role: coder@2\nx", "code", temperature=0.0, seed=0
            )
    assert (len(cheap.requests), len(strong.requests)) == (1, 1)


def test_without_endpoints_the_configured_model_is_used_as_it_was() -> None:
    model = chat_model(Settings(openai_base_url="http://127.0.0.1:9/v1"))
    assert isinstance(model, ChatOpenAI)


async def test_a_streamed_call_falls_back_before_its_first_token_and_is_priced() -> None:
    cheap = FakeEndpoint("cheap", _answer("cheap"), fail_first=1)
    strong = FakeEndpoint("strong", _answer("strong"))
    with serving(cheap, strong):
        model = chat_model(_settings(cheap, strong))
        chunks = [c async for c in model.astream("# role: supervisor@1\nwhich next?")]
    reply = chunks[0]
    for chunk in chunks[1:]:
        reply = reply + chunk
    assert reply.content == "answer from strong"
    usage = usage_of(reply)
    assert usage["completion_tokens"] > 0
    expected = (usage["prompt_tokens"] * 5.0 + usage["completion_tokens"] * 20.0) / 1e6
    assert usage["cost_usd"] == pytest.approx(expected)
    assert strong.requests[0]["stream"] is True
