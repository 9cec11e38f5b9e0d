"""math_eval: exact answers; untrusted input never reaches SymPy's eval, nor secrets the worker."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from tools.builtin.math_eval import MathEvalArgs, math_eval
from tools.child_env import INHERITED, child_env
from tools.errors import ToolError
from tools.registry import ToolContext
from tools.workspaces import MemoryWorkspace

CTX = ToolContext(workspace=MemoryWorkspace(), tenant_id="t", task_id="task")


async def run(expression: str, **kw: object) -> dict[str, object]:
    args = MathEvalArgs.model_validate({"expression": expression, **kw})
    return (await math_eval(args, CTX)).model_dump()


@pytest.mark.parametrize(
    ("expression", "result"),
    [
        ("2^100", str(2**100)),
        ("1/3 + 1/6", "1/2"),
        ("sqrt(8)", "2*sqrt(2)"),
        ("sin(pi/6) + e^0", "3/2"),
        ("factorial(20)", "2432902008176640000"),
        ("gcd(84, 36) + lcm(4, 6)", "24"),
        ("0.1 + 0.2", "0.300000000000000"),
    ],
)
async def test_exact_evaluation(expression: str, result: str) -> None:
    assert (await run(expression))["result"] == result


async def test_operations() -> None:
    assert (await run("x**2 - 1", operation="factor"))["result"] == "(x - 1)*(x + 1)"
    assert (await run("(x + 1)**2", operation="expand"))["result"] == "x**2 + 2*x + 1"
    assert (await run("x**2 - 5*x + 6", operation="solve"))["solutions"] == ["2", "3"]
    assert (await run("2*y = 3", operation="solve"))["solutions"] == ["3/2"]
    assert (await run("x*y", operation="diff", variable="y"))["result"] == "x"
    assert (await run("2*x", operation="integrate"))["result"] == "x**2"
    assert (await run("sqrt(2)", digits=30))["numeric"] == "1.41421356237309504880168872421"


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("__import__('os').system('id')", "Unknown function"),
        ("x.__class__", "Attribute is not allowed"),
        ("(lambda: 1)()", "Unknown function"),
        ("sin(lambda: 1)", "Lambda is not allowed"),
        ("[x for x in y]", "not allowed"),
        ("open('/etc/passwd')", "Unknown function 'open'"),
        ("_secret + 1", "not allowed"),
        ("9**9**9", "Exponents must be numbers"),
        ("2**(10**6)", "Exponents must be numbers"),
        ("factorial(10**7)", "limited to arguments"),
        ("factorial(2**40)", "limited to arguments"),
        ("1" * 400, "at most 300 digits"),
        ("x = 1", "only makes sense with operation 'solve'"),
        ("x*y = 1", "Say which variable"),
        ("sin(", "Cannot parse"),
    ],
)
async def test_unsafe_or_malformed_input_is_refused_with_a_reason(
    expression: str, message: str
) -> None:
    operation = "solve" if "x*y" in expression else "evaluate"
    with pytest.raises(ToolError, match=message):
        await run(expression, operation=operation)


async def test_a_computation_over_the_time_limit_is_killed_and_the_tool_recovers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tools.builtin import math_eval as module

    usual = module.TIMEOUT_S
    monkeypatch.setattr(module, "TIMEOUT_S", 1.0)
    with pytest.raises(ToolError, match="took longer than 1 s and was stopped"):
        await run("factorial(5000)^9999 + 1")
    # The fresh worker imports sympy again, which can take over a second on a busy machine.
    monkeypatch.setattr(module, "TIMEOUT_S", usual)
    assert (await run("2 + 2"))["result"] == "4"


FAKE_SECRETS = {
    "OPENAI_API_KEY": "sk-fake-openai-0123456789",
    "STRATEGOS_API_KEY": "fake-strategos-key-0123456789",
    "AWS_SECRET_ACCESS_KEY": "fake-aws-secret-0123456789",
}


def _environ_of(pid: int) -> dict[str, str]:
    """The environment the kernel handed to process `pid` when it started."""
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = (entry.decode().split("=", 1) for entry in raw.split(b"\0") if entry)
    return {pair[0]: pair[-1] for pair in pairs}


async def test_the_worker_process_never_sees_the_services_secrets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tools.builtin import math_eval as module

    for name, value in FAKE_SECRETS.items():
        monkeypatch.setenv(name, value)
    await module.shutdown_worker()  # the next call starts a worker under this environment
    try:
        assert (await run("1 + 1"))["result"] == "2"
        proc = module._WORKERS[asyncio.get_running_loop()].proc
        assert proc is not None and proc.returncode is None
        environ = _environ_of(proc.pid)
    finally:
        await module.shutdown_worker()
    assert not set(FAKE_SECRETS) & set(environ)
    assert not any(value in environ.values() for value in FAKE_SECRETS.values())
    assert set(environ) <= {*INHERITED, "PYTHONPATH"}
    assert environ["PYTHONPATH"].split(os.pathsep)[0] == str(Path(module.__file__).parents[2])


def test_child_env_passes_only_the_allow_list(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in FAKE_SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LANG", "C.UTF-8")
    env = child_env(PYTHONPATH="/x")
    assert env["LANG"] == "C.UTF-8" and env["PYTHONPATH"] == "/x"
    assert set(env) <= {*INHERITED, "PYTHONPATH"}
