"""E2B backend: the real e2b-code-interpreter SDK in debug mode against the local executor."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tools.sandbox import SandboxLimits, SandboxUnavailable
from tools.sandbox.e2b import E2BSandbox
from tools.sandbox.executor import ExecutorServer


@pytest.fixture(scope="module")
def server() -> Iterator[ExecutorServer]:
    with ExecutorServer() as running:
        yield running


async def test_sdk_runs_a_command_through_the_executor(server: ExecutorServer) -> None:
    sandbox = E2BSandbox(debug=True, sandbox_url=server.url)
    files = {"main.py": "import solution\nprint(solution.add(2, 3))\n"}
    files["solution.py"] = "def add(a, b):\n    return a + b\n"
    result = await sandbox.run_python(files, "main.py")
    assert result.ok, result.stderr
    assert result.stdout == "5\n"
    failed = await sandbox.run_python({"m.py": "import sys; sys.exit(3)"}, "m.py")
    assert failed.exit_code == 3
    slow = await sandbox.run({}, ["sleep", "20"], SandboxLimits(timeout_s=1))
    assert slow.timed_out and "timeout" in slow.limits_hit


async def test_sdk_reads_debug_settings_from_the_environment(
    server: ExecutorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("E2B_DEBUG", "true")
    monkeypatch.setenv("E2B_SANDBOX_URL", server.url)
    monkeypatch.delenv("E2B_API_KEY", raising=False)
    result = await E2BSandbox().run({}, ["python3", "-c", "print('via env')"])
    assert result.stdout == "via env\n"


async def test_sdk_run_code_speaks_the_execute_protocol(server: ExecutorServer) -> None:
    from e2b_code_interpreter import AsyncSandbox  # type: ignore[import-untyped]

    sbx = await AsyncSandbox.create(debug=True, sandbox_url=server.url)
    execution = await sbx.run_code("import sys\nprint('out')\nprint('err', file=sys.stderr)\n6 * 7")
    assert execution.logs.stdout == ["out\n"]
    assert execution.logs.stderr == ["err\n"]
    assert execution.text == "42"
    broken = await sbx.run_code("1 / 0")
    assert broken.error is not None and broken.error.name == "ZeroDivisionError"
    await sbx.kill()


def test_executor_wire_format(server: ExecutorServer) -> None:
    response = httpx.post(f"{server.url}/execute", json={"code": "print(1)\n'ok'"}, timeout=30)
    assert response.status_code == 200
    messages = [json.loads(line) for line in response.text.splitlines()]
    types = [m["type"] for m in messages]
    assert types == ["number_of_executions", "stdout", "result", "end_of_execution"]
    assert messages[1]["text"] == "1\n" and messages[2]["text"] == "'ok'"
    assert httpx.get(f"{server.url}/health", timeout=10).status_code == 204
    bad = httpx.post(f"{server.url}/execute", json={"code": "x", "language": "r"}, timeout=10)
    assert bad.status_code == 400


def test_executor_refuses_non_loopback() -> None:
    with pytest.raises(ValueError, match="loopback"):
        ExecutorServer(host="0.0.0.0")


async def test_unreachable_service_is_reported() -> None:
    sandbox = E2BSandbox(debug=True, sandbox_url="http://127.0.0.1:9", request_timeout_s=3)
    with pytest.raises(Exception) as info:
        await sandbox.run({}, ["true"])
    assert not isinstance(info.value, SandboxUnavailable) or "E2B" in str(info.value)
