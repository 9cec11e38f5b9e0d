"""HttpTokenizer against a tiny llama-server-like `/tokenize` endpoint on loopback."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from memory.tokens import HttpTokenizer, TokenizerError
from memory.working import WorkingMemory

_TOKEN = re.compile(r"\w+|[^\w\s]")


class _Handler(BaseHTTPRequestHandler):
    calls = 0

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        type(self).calls += 1
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path != "/tokenize" or "content" not in body:
            self.send_response(404)
            self.end_headers()
            return
        if body["content"] == "BOOM":
            self.send_response(500)
            self.end_headers()
            return
        tokens = [hash(t) % 32000 for t in _TOKEN.findall(body["content"])]
        data = json.dumps({"tokens": tokens}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    _Handler.calls = 0
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_counts_tokens_from_the_server_and_caches(server: str) -> None:
    tok = HttpTokenizer(server)
    try:
        assert tok.count("def f(x): return x") == 8
        assert tok.count("def f(x): return x") == 8
        assert _Handler.calls == 1  # second count came from the cache
        assert tok.count("") == 0
        assert _Handler.calls == 1
    finally:
        tok.close()


def test_accepts_an_openai_style_base_url(server: str) -> None:
    tok = HttpTokenizer(server + "/v1/")
    try:
        assert tok.url == server + "/tokenize"
        assert tok.count("a b c") == 3
    finally:
        tok.close()


def test_server_errors_raise_a_typed_error(server: str) -> None:
    tok = HttpTokenizer(server)
    try:
        with pytest.raises(TokenizerError, match="tokenize failed"):
            tok.count("BOOM")
    finally:
        tok.close()


def test_unreachable_server_raises_a_typed_error() -> None:
    tok = HttpTokenizer("http://127.0.0.1:9", timeout=1.0)
    with pytest.raises(TokenizerError):
        tok.count("hello")
    tok.close()


def test_working_memory_budget_holds_with_server_counts(server: str) -> None:
    tok = HttpTokenizer(server)
    try:
        wm = WorkingMemory(150, counter=tok, max_turns=6, keep_recent=3)
        wm.pin("goal", "GOAL: write add(a, b) returning a + b. PIN-9.")
        for i in range(40):
            wm.add_turn("coder", f"attempt {i}: " + "tokens, more; " * (i % 9) * 5)
            prompt = wm.assemble()
            assert tok.count(prompt.text) == prompt.tokens <= 150
            assert "PIN-9" in prompt.text
    finally:
        tok.close()
