"""Every 429 of the model endpoint reaches the backpressure gauge, retried ones included.

A real HTTP server on 127.0.0.1 plays the OpenAI-compatible endpoint: it throttles a few times,
then answers. The model comes from the factory (`chat_model`), the gauge is the process's
`LimitStore` (Redis with a fresh prefix, or in-process), read back with `model_429_per_min()`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import redis

from graphs.deps import text_of
from service.llm.models import chat_model
from service.rate_limits import LimitStore, close_limit_stores, get_limit_store
from service.settings import Settings, get_settings

REDIS_URL = os.environ.get("STRATEGOS_TEST_REDIS", "redis://127.0.0.1:6379/0")
COMPLETION = {
    "id": "chatcmpl-test",
    "object": "chat.completion",
    "created": 0,
    "model": "test-model",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
}


class Endpoint:
    """The fake endpoint's script: `throttle` 429s first, then completions."""

    def __init__(self, throttle: int) -> None:
        self.throttle = throttle
        self.statuses: list[int] = []
        self.lock = threading.Lock()

    def next_status(self) -> int:
        with self.lock:
            status = 429 if len(self.statuses) < self.throttle else 200
            self.statuses.append(status)
            return status


@contextmanager
def serve_endpoint(throttle: int) -> Iterator[tuple[str, Endpoint]]:
    """A `/v1/chat/completions` server on a free loopback port, in a thread."""
    endpoint = Endpoint(throttle)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status = endpoint.next_status() if self.path == "/v1/chat/completions" else 404
            if status == 429:
                body = {"error": {"message": "slow down", "type": "rate_limit_exceeded"}}
            else:
                body = COMPLETION
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("retry-after-ms", "10")  # the client's retry waits this long
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", endpoint
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def model_settings(base_url: str, retries: int) -> Settings:
    return Settings().model_copy(
        update={
            "openai_base_url": base_url,
            "scripted_model": None,
            "model": "test-model",
            "model_max_retries": retries,
            "request_timeout_s": 10.0,
        }
    )


def redis_available() -> bool:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(params=["redis", "in-process"])
async def gauge(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[LimitStore]:
    """The process's limit store, on Redis under a fresh prefix or in-process."""
    prefix = f"strategos-test:{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("STRATEGOS_REDIS_PREFIX", prefix)
    if request.param == "redis":
        if not redis_available():
            pytest.skip(f"no Redis at {REDIS_URL}")
        monkeypatch.setenv("STRATEGOS_REDIS_URL", REDIS_URL)
    else:
        monkeypatch.delenv("STRATEGOS_REDIS_URL", raising=False)
    get_settings.cache_clear()
    await close_limit_stores()  # an earlier test's store on this loop has other settings
    store = get_limit_store()
    try:
        yield store
    finally:
        if store.redis is not None:
            keys = [key async for key in store.redis.scan_iter(match=f"{prefix}*")]
            if keys:
                await store.redis.delete(*keys)
        await close_limit_stores()
        get_settings.cache_clear()


async def test_every_429_of_one_call_is_counted_including_retried_ones(
    gauge: LimitStore,
) -> None:
    with serve_endpoint(throttle=2) as (url, endpoint):
        model = chat_model(model_settings(url, retries=2))
        reply = await model.ainvoke("Say ok.")

    assert text_of(reply) == "ok"
    assert endpoint.statuses == [429, 429, 200]
    assert await gauge.model_429_per_min() == 2


async def test_a_call_that_gives_up_on_429s_counts_each_of_them(gauge: LimitStore) -> None:
    from openai import RateLimitError

    with serve_endpoint(throttle=5) as (url, endpoint):
        model = chat_model(model_settings(url, retries=1))
        with pytest.raises(RateLimitError):
            await model.ainvoke("Say ok.")

    assert endpoint.statuses == [429, 429]
    assert await gauge.model_429_per_min() == 2


async def test_sync_calls_count_through_redis_and_skip_the_in_process_gauge(
    gauge: LimitStore,
) -> None:
    with serve_endpoint(throttle=2) as (url, endpoint):
        model = chat_model(model_settings(url, retries=2))
        # A worker thread has no event loop: the hook reaches Redis on a connection of its own.
        reply = await asyncio.to_thread(model.invoke, "Say ok.")

    assert text_of(reply) == "ok"
    assert endpoint.statuses == [429, 429, 200]
    expected = 2 if gauge.redis is not None else 0
    assert await gauge.model_429_per_min() == expected


async def test_a_broken_gauge_never_fails_the_model_call(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("STRATEGOS_REDIS_URL", f"redis://127.0.0.1:{closed_port()}/0")
    get_settings.cache_clear()
    await close_limit_stores()
    try:
        with serve_endpoint(throttle=1) as (url, endpoint):
            model = chat_model(model_settings(url, retries=1))
            started = time.monotonic()
            with caplog.at_level(logging.WARNING, logger="service.llm.models"):
                reply = await model.ainvoke("Say ok.")
            elapsed = time.monotonic() - started
    finally:
        await close_limit_stores()
        get_settings.cache_clear()

    assert text_of(reply) == "ok"
    assert endpoint.statuses == [429, 200]
    assert elapsed < 10
    assert "could not count a model-endpoint 429" in caplog.text
