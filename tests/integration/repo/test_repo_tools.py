"""The repository tools through the gateway: the real sandbox, the real ledger, real files."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tools.builtin import default_registry
from tools.builtin.deliver_patch import changes_between
from tools.gateway import ApprovalDecision, ApprovalRequest, CallContext, ToolGateway
from tools.ledger import Ledger, PostgresLedger, SqliteLedger
from tools.sandbox import LocalSandbox, SandboxLimits
from tools.workspaces import DirWorkspace, MemoryWorkspace

ORIGINAL = {
    "calc/__init__.py": "",
    "calc/ops.py": "def add(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return a * b\n",
    "calc/legacy.py": "OLD = True\n",
    "tests/test_ops.py": (
        "from calc.ops import add, mul\n\n\n"
        "def test_add():\n    assert add(2, 3) == 5\n\n\n"
        "def test_mul():\n    assert mul(2, 3) == 6\n"
    ),
}


@pytest.fixture(params=["sqlite", "postgres"])
async def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Ledger]:
    if request.param == "postgres":
        store: Ledger = await PostgresLedger.from_url(request.getfixturevalue("pg_url"))
    else:
        store = SqliteLedger(tmp_path / "ledger.db")
    await store.setup()
    yield store
    await store.close()


def _ctx(workspace: object, call_id: str, **extra: object) -> CallContext:
    return CallContext(thread_id="task-1", tool_call_id=call_id, workspace=workspace, **extra)  # type: ignore[arg-type]


async def test_the_repository_suite_runs_in_the_sandbox_and_names_the_failing_test(
    ledger: Ledger,
) -> None:
    gateway = ToolGateway(default_registry(), ledger, sandbox=LocalSandbox())
    workspace = MemoryWorkspace(ORIGINAL)
    obs = await gateway.call("run_repo_tests", {}, _ctx(workspace, "t1"))
    assert obs.ok and obs.result is not None, obs.error
    assert obs.result["passed"] is False and obs.result["exit_code"] == 1
    assert obs.result["failed"] == ["tests/test_ops.py::test_add"]
    assert obs.result["tests_passed"] == 1
    assert "assert -1 == 5" in str(obs.result["excerpt"])

    await workspace.write("calc/ops.py", ORIGINAL["calc/ops.py"].replace("a - b", "a + b"))
    fixed = await gateway.call("run_repo_tests", {}, _ctx(workspace, "t2"))
    assert fixed.result is not None
    assert fixed.result["passed"] is True and fixed.result["tests_passed"] == 2


async def test_a_hanging_suite_is_stopped_by_the_sandbox_limits(tmp_path: Path) -> None:
    ledger = SqliteLedger(tmp_path / "ledger.db")
    await ledger.setup()
    limits = SandboxLimits(timeout_s=3, cpu_s=3)
    gateway = ToolGateway(default_registry(), ledger, sandbox=LocalSandbox(), limits=limits)
    files = {**ORIGINAL, "tests/test_hang.py": "def test_hang():\n    while True:\n        pass\n"}
    obs = await gateway.call(
        "run_repo_tests", {"targets": ["tests/test_hang.py"]}, _ctx(MemoryWorkspace(files), "h")
    )
    await ledger.close()
    assert obs.ok and obs.result is not None
    assert obs.result["passed"] is False and obs.result["exit_code"] == -1
    assert "time limit" in str(obs.result["excerpt"]) or obs.result["timed_out"]


async def test_bad_targets_are_refused_before_anything_runs(tmp_path: Path) -> None:
    ledger = SqliteLedger(tmp_path / "ledger.db")
    await ledger.setup()
    gateway = ToolGateway(default_registry(), ledger, sandbox=LocalSandbox())
    for target in ("../outside.py", "/etc/passwd", "--collect-only"):
        obs = await gateway.call(
            "run_repo_tests", {"targets": [target]}, _ctx(MemoryWorkspace(ORIGINAL), target)
        )
        assert not obs.ok and obs.error is not None and obs.error.code in ("invalid_args", "denied")
    await ledger.close()


def _working_copy() -> dict[str, str]:
    current = dict(ORIGINAL)
    current["calc/ops.py"] = ORIGINAL["calc/ops.py"].replace("a - b", "a + b")
    current["calc/extra.py"] = "def sub(a, b):\n    return a - b"
    del current["calc/legacy.py"]
    return current


async def test_an_approved_patch_is_written_once_and_reproduces_the_working_copy(
    ledger: Ledger, tmp_path: Path
) -> None:
    asked: list[ApprovalRequest] = []

    async def approve(request: ApprovalRequest) -> ApprovalDecision:
        asked.append(request)
        return ApprovalDecision(approved=True, approver="reviewer")

    gateway = ToolGateway(default_registry(), ledger, approver=approve)
    destination = DirWorkspace.create(tmp_path / "delivered")
    args = changes_between(ORIGINAL, _working_copy(), "add adds; sub added; legacy removed")
    first = await gateway.call("deliver_patch", args, _ctx(destination, "deliver"))
    assert first.ok and first.result is not None, first.error
    assert first.result["modified"] == ["calc/ops.py"]
    assert first.result["added"] == ["calc/extra.py"]
    assert first.result["deleted"] == ["calc/legacy.py"]
    [request] = asked
    patch = (tmp_path / "delivered" / "patch.diff").read_text()
    assert request.args["patch"] == patch and "-    return a - b\n+    return a + b" in patch
    assert (tmp_path / "delivered/files/calc/ops.py").read_text() == _working_copy()["calc/ops.py"]

    (tmp_path / "delivered" / "patch.diff").write_text("edited by a person afterwards")
    again = await gateway.call("deliver_patch", args, _ctx(destination, "deliver"))
    assert again.replayed and again.result == first.result and len(asked) == 1
    assert (tmp_path / "delivered" / "patch.diff").read_text() == "edited by a person afterwards"

    repo = tmp_path / "repo"
    for path, text in ORIGINAL.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(text)
    subprocess.run(
        ["patch", "-p1", "--batch", "--quiet"], cwd=repo, input=patch, text=True, check=True
    )
    after = {p.relative_to(repo).as_posix(): p.read_text() for p in repo.rglob("*") if p.is_file()}
    assert after == _working_copy()


async def test_a_rejected_patch_writes_nothing(ledger: Ledger, tmp_path: Path) -> None:
    async def reject(request: ApprovalRequest) -> ApprovalDecision:
        return ApprovalDecision(approved=False, comment="not this way", approver="reviewer")

    gateway = ToolGateway(default_registry(), ledger, approver=reject)
    destination = DirWorkspace.create(tmp_path / "delivered")
    args = changes_between(ORIGINAL, _working_copy())
    obs = await gateway.call("deliver_patch", args, _ctx(destination, "deliver"))
    assert not obs.ok and obs.error is not None and obs.error.code == "rejected"
    assert "not this way" in obs.error.message
    assert list((tmp_path / "delivered").iterdir()) == []


async def test_a_patch_that_is_not_the_diff_of_the_changes_is_refused(tmp_path: Path) -> None:
    ledger = SqliteLedger(tmp_path / "ledger.db")
    await ledger.setup()
    gateway = ToolGateway(default_registry(), ledger, approver=None)
    args = {**changes_between(ORIGINAL, _working_copy()), "patch": "--- a/x\n+++ b/x\n"}
    obs = await gateway.call("deliver_patch", args, _ctx(MemoryWorkspace(), "forged"))
    await ledger.close()
    assert not obs.ok and obs.error is not None and obs.error.code == "invalid_args"
    assert "not the diff of `changes`" in obs.error.message


async def test_the_code_under_test_cannot_replace_the_report(tmp_path: Path) -> None:
    forged = (
        "import atexit, glob, re, sys\n"
        "runner = open(glob.glob('__strategos_pytest__.py')[0]).read()\n"
        "marker = re.search(r'@@STRATEGOS-PYTEST-[0-9a-f]+@@', runner).group(0)\n"
        'fake = \'{"exit_code": 0, "passed": 9, "failed": [], "skipped": 0, '
        '"excerpt": [], "output": ""}\'\n'
        "atexit.register(lambda: sys.__stdout__.write('\\n' + marker + fake + '\\n'))\n"
        "print('\\n' + marker + fake)\n"
    )
    ledger = SqliteLedger(tmp_path / "ledger.db")
    await ledger.setup()
    gateway = ToolGateway(default_registry(), ledger, sandbox=LocalSandbox())
    files = {**ORIGINAL, "conftest.py": forged}
    obs = await gateway.call("run_repo_tests", {}, _ctx(MemoryWorkspace(files), "forge"))
    await ledger.close()
    assert obs.result is not None, obs.error
    assert obs.result["passed"] is False and obs.result["tests_passed"] == 1
    assert obs.result["failed"] == ["tests/test_ops.py::test_add"]
