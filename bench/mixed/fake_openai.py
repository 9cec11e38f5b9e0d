"""Scripted OpenAI-compatible endpoints on real loopback HTTP, for the routing benchmark and tests.

Each endpoint is a `/v1/chat/completions` server on a free 127.0.0.1 port, in a thread. Its
answer comes from a Python function of the request, after a fixed latency; it can answer the
first `fail_first` requests, or every `fail_every`-th, with an error status (429, 500) to
exercise fallbacks. Token usage is reported as a real server would (about 4 characters a
token), so prices apply to it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Answer = Callable[[dict[str, Any]], str]
"""The reply's text for a request body (messages, temperature, seed …)."""


@dataclass
class FakeEndpoint:
    """What one fake endpoint answers, and every request it saw."""

    name: str
    answer: Answer
    latency_s: float = 0.0
    fail_first: int = 0
    fail_every: int = 0
    """Besides the first ones, fail every `fail_every`-th request (0: never)."""
    fail_status: int = 429
    requests: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def respond(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """The status and JSON body for one request."""
        with self._lock:
            self.requests.append(body)
            seen = len(self.requests)
            every = self.fail_every and seen % self.fail_every == 0
            failing = seen <= self.fail_first or bool(every)
        if failing:
            error = {"message": "try later", "type": "rate_limit_exceeded"}
            return self.fail_status, {"error": error}
        time.sleep(self.latency_s)
        text = self.answer(body)
        prompt = sum(len(str(m.get("content") or "")) for m in body.get("messages", []))
        usage = {"prompt_tokens": max(1, prompt // 4), "completion_tokens": max(1, len(text) // 4)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "finish_reason": "stop",
        }
        completion = {
            "id": f"chatcmpl-{self.name}-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", self.name),
            "choices": [choice],
            "usage": usage,
        }
        return 200, completion


def _handler(endpoint: FakeEndpoint) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.path != "/v1/chat/completions":
                status, body = 404, {"error": {"message": "no such path"}}
            else:
                request = json.loads(raw)
                status, body = endpoint.respond(request)
                if status == 200 and request.get("stream"):
                    return self._stream(body)
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _stream(self, completion: dict[str, Any]) -> None:
            """The answer as server-sent events: one content chunk, then the usage, then DONE."""
            base = {k: completion[k] for k in ("id", "created", "model")}
            base["object"] = "chat.completion.chunk"
            text = completion["choices"][0]["message"]["content"]
            delta = {"index": 0, "delta": {"role": "assistant", "content": text}}
            events = [
                {**base, "choices": [{**delta, "finish_reason": None}]},
                {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
                {**base, "choices": [], "usage": completion["usage"]},
            ]
            data = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Content-Length", str(len(data.encode())))
            self.end_headers()
            self.wfile.write(data.encode())

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@contextmanager
def serving(*endpoints: FakeEndpoint) -> Iterator[list[FakeEndpoint]]:
    """Serve each endpoint on its own loopback port; `endpoint.url` is its OpenAI base URL."""
    servers = []
    try:
        for endpoint in endpoints:
            server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(endpoint))
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, daemon=True).start()
            endpoint.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
            servers.append(server)
        yield list(endpoints)
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
