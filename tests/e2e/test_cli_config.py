"""Configuration that must not surprise: which key goes where, tracing, default ports.

The operator's incident: `STRATEGOS_API_KEY` (a tenant's key for the task API) was also read as
the model endpoint's key, so it was sent to the model provider; offline LangSmith tracing made
every command hang ~12 s at exit; `strategos dlq` looked for the server on another port than
the one `strategos serve` listens on.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from service.exit_codes import ExitCode
from service.settings import Settings
from tests.conftest import cli_env
from tests.e2e.cli_support import GOAL, add_script, output, strategos

pytestmark = pytest.mark.slow


class _Recorder(BaseHTTPRequestHandler):
    """A model endpoint that refuses every key and records what it was sent."""

    keys: list[str] = []

    def do_POST(self) -> None:  # noqa: N802 - the http.server hook name
        self.keys.append(self.headers.get("Authorization", ""))
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        body = b'{"error": {"message": "bad key", "type": "invalid_request_error"}}'
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def model_endpoint() -> Iterator[tuple[str, list[str]]]:
    """A local OpenAI-compatible endpoint and the Authorization headers it received."""
    keys: list[str] = []
    handler = type("Recorder", (_Recorder,), {"keys": keys})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", keys
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_the_tenant_key_is_never_sent_to_the_model_endpoint(
    tmp_path: Path, model_endpoint: tuple[str, list[str]]
) -> None:
    url, keys = model_endpoint
    run = ["run", GOAL, "--approve", "auto", "--out", str(tmp_path / "out")]
    env = cli_env(tmp_path, OPENAI_BASE_URL=url, STRATEGOS_API_KEY="tenant-secret")
    env["STRATEGOS_MEMORY_ENABLED"] = "false"
    done = strategos(run, env)
    assert done.returncode == ExitCode.ERROR, output(done)
    assert keys and all("tenant-secret" not in key for key in keys), keys

    keys.clear()
    done = strategos(run, {**env, "STRATEGOS_MODEL_API_KEY": "model-secret"})
    assert done.returncode == ExitCode.ERROR, output(done)
    assert keys and set(keys) == {"Bearer model-secret"}, keys


def test_the_model_key_is_read_from_its_own_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "STRATEGOS_MODEL_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STRATEGOS_API_KEY", "tenant-secret")
    assert Settings().openai_api_key is None
    monkeypatch.setenv("STRATEGOS_MODEL_API_KEY", "model-secret")
    key = Settings().openai_api_key
    assert key is not None and key.get_secret_value() == "model-secret"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again on return: connections are refused


def test_unreachable_langsmith_is_one_warning_and_no_upload(tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    env = cli_env(
        tmp_path,
        STRATEGOS_SCRIPTED_MODEL=str(add_script(tmp_path / "s.json")),
        LANGSMITH_TRACING="true",
        LANGSMITH_ENDPOINT=endpoint,
        LANGSMITH_API_KEY="lsv2-test",
    )
    done = strategos(["run", GOAL, "--approve", "auto", "--out", str(tmp_path / "out")], env)
    assert done.returncode == ExitCode.DELIVERED, output(done)
    # One warning, and no upload attempt (each would log a failure at exit).
    assert done.stderr.strip().splitlines() == [
        f"warning: LangSmith at {endpoint} is unreachable; tracing is off for this run"
    ], output(done)


def test_dlq_talks_to_the_port_serve_listens_on(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    serve_help = strategos(["serve", "--help"], {**env, "COLUMNS": "200"}).stdout
    dlq_help = strategos(["dlq", "list", "--help"], {**env, "COLUMNS": "200"}).stdout
    assert "[default: 2026]" in serve_help
    assert "[default: http://127.0.0.1:2026]" in dlq_help
