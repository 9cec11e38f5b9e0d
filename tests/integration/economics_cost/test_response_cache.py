"""The exact response cache on the real Redis: greedy repeats are free, samples always sample.

The model talks to a scripted OpenAI-compatible server on loopback HTTP that counts requests,
so "served from the cache" means the endpoint was not asked.
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from prometheus_client import REGISTRY
from pydantic import BaseModel

from bench.mixed.fake_openai import FakeEndpoint, serving
from service.llm.cache import HIT, CachedChatOpenAI, GreedyCache
from service.llm.models import chat_model
from service.settings import Settings
from service.team_deps import ServiceDeps

REDIS_URL = os.environ.get("STRATEGOS_TEST_REDIS", "redis://127.0.0.1:6379/0")
_COUNTER = itertools.count()


def _numbered(body: dict[str, Any]) -> str:
    """A different answer every time: a repeat served by the server would show."""
    return f'{{"answer": {next(_COUNTER)}}}'


class Answer(BaseModel):
    answer: int


@pytest.fixture
def endpoint() -> Iterator[FakeEndpoint]:
    with serving(FakeEndpoint("cached", _numbered)) as (fake,):
        yield fake


@pytest.fixture
def prefix() -> Iterator[str]:
    prefix = f"test-cache-{uuid.uuid4().hex[:8]}"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{prefix}*"))
    if keys:
        client.delete(*keys)
    client.close()


def _settings(endpoint: FakeEndpoint, prefix: str, **extra: Any) -> Settings:
    return Settings(
        openai_base_url=endpoint.url,
        redis_url=REDIS_URL,
        redis_prefix=prefix,
        response_cache=True,
        **extra,
    )


def _hits() -> float:
    return sum(
        s.value
        for metric in REGISTRY.collect()
        if metric.name == "strategos_model_cache_hits"
        for s in metric.samples
        if s.name.endswith("_total")
    )


async def test_a_repeated_greedy_call_is_answered_from_the_cache_for_free(
    endpoint: FakeEndpoint, prefix: str
) -> None:
    settings = _settings(endpoint, prefix)
    deps, model = ServiceDeps(settings), chat_model(settings)
    first, paid = await deps.ask_text(model, "sys", "same question", temperature=0.0, seed=0)
    hits = _hits()
    again, free = await deps.ask_text(model, "sys", "same question", temperature=0.0, seed=0)
    assert again == first
    assert len(endpoint.requests) == 1
    assert paid["prompt_tokens"] > 0
    assert (free["prompt_tokens"], free["completion_tokens"], free["cost_usd"]) == (0, 0, 0.0)
    assert _hits() == hits + 1


async def test_a_structured_greedy_answer_is_cached_too(
    endpoint: FakeEndpoint, prefix: str
) -> None:
    settings = _settings(endpoint, prefix)
    deps, model = ServiceDeps(settings), chat_model(settings)
    first, _ = await deps.ask_json(model, "sys", "json please", Answer)
    second, usage = await deps.ask_json(model, "sys", "json please", Answer)
    assert first == second
    assert len(endpoint.requests) == 1
    assert usage["completion_tokens"] == 0


async def test_a_sampled_call_is_never_served_from_the_cache(
    endpoint: FakeEndpoint, prefix: str
) -> None:
    settings = _settings(endpoint, prefix)
    deps, model = ServiceDeps(settings), chat_model(settings)
    texts = [
        (await deps.ask_text(model, "sys", "sample me", temperature=0.7, seed=0))[0]
        for _ in range(3)
    ]
    assert len(set(texts)) == 3
    assert len(endpoint.requests) == 3
    samples, _ = await deps.ask_texts(model, "sys", "sample me", n=2, temperature=0.7, seed=5)
    assert len(endpoint.requests) == 5


@pytest.mark.parametrize(
    ("change", "extra"),
    [
        ({"temperature": 0.0, "seed": 1}, {}),  # another seed
        ({"temperature": 0.0, "seed": 0}, {"model": "another-model"}),  # another model
        ({"temperature": 0.0, "seed": 0}, {"max_completion_tokens": 99}),  # another limit
    ],
    ids=["seed", "model", "max_tokens"],
)
async def test_a_different_seed_or_model_is_a_miss(
    endpoint: FakeEndpoint, prefix: str, change: dict[str, Any], extra: dict[str, Any]
) -> None:
    base = _settings(endpoint, prefix)
    await ServiceDeps(base).ask_text(chat_model(base), "sys", "q", temperature=0.0, seed=0)
    other = _settings(endpoint, prefix, **extra)
    text, usage = await ServiceDeps(other).ask_text(chat_model(other), "sys", "q", **change)
    assert len(endpoint.requests) == 2
    assert usage["prompt_tokens"] > 0


async def test_another_endpoint_of_the_same_model_is_a_miss(prefix: str) -> None:
    with serving(FakeEndpoint("a", _numbered), FakeEndpoint("b", _numbered)) as (a, b):
        for fake in (a, b):
            settings = _settings(fake, prefix)
            await ServiceDeps(settings).ask_text(
                chat_model(settings), "s", "q", temperature=0, seed=0
            )
        assert (len(a.requests), len(b.requests)) == (1, 1)


async def test_one_tenant_is_never_served_another_tenants_answer(
    endpoint: FakeEndpoint, prefix: str
) -> None:
    tenant = ["alpha"]
    cache = GreedyCache(
        redis.Redis.from_url(REDIS_URL), prefix=prefix, ttl_s=60, scope=lambda: tenant[0]
    )
    model = chat_model(_settings(endpoint, prefix))
    assert isinstance(model, CachedChatOpenAI)
    model.with_cache(cache)
    first = await model.ainvoke("hello", temperature=0)
    assert (await model.ainvoke("hello", temperature=0)).response_metadata.get(HIT) is True
    tenant[0] = "beta"
    other = await model.ainvoke("hello", temperature=0)
    assert other.content != first.content
    assert len(endpoint.requests) == 2


async def test_a_down_redis_is_a_miss_not_a_failed_call(endpoint: FakeEndpoint) -> None:
    settings = Settings(
        openai_base_url=endpoint.url, redis_url="redis://127.0.0.1:1/0", response_cache=True
    )
    text, _ = await ServiceDeps(settings).ask_text(
        chat_model(settings), "s", "q", temperature=0.0, seed=0
    )
    assert text.startswith('{"answer"')


async def test_a_streamed_greedy_call_is_cached_and_shares_entries_with_plain_calls(
    endpoint: FakeEndpoint, prefix: str
) -> None:
    model = chat_model(_settings(endpoint, prefix)).bind(temperature=0.0, seed=0)
    streamed = "".join([str(c.content) async for c in model.astream("stream me")])
    again = [c async for c in model.astream("stream me")]
    plain = await model.ainvoke("stream me")
    assert "".join(str(c.content) for c in again) == streamed == plain.content
    assert len(endpoint.requests) == 1 and endpoint.requests[0]["stream"] is True
    assert again[0].response_metadata.get(HIT) is True
    sampled = model.bind(temperature=0.9)
    assert [c async for c in sampled.astream("stream me")]
    assert len(endpoint.requests) == 2
