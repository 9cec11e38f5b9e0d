"""Security-suite fixtures: one sandbox per backend, outcome recording and host-state checks.

Every attack runs against `local` and `gvisor`, and through the E2B SDK path (real SDK in debug
mode against the local executor) where it applies. Set STRATEGOS_SECURITY_REPORT=<file.json> to
write (attack, backend, outcome) rows; `tests/security/make_results.py` turns them into
RESULTS.md.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tools.sandbox import LocalSandbox, Sandbox, SandboxUnavailable
from tools.sandbox.cgroups import RunCgroup
from tools.sandbox.markers import current_owner

REPORT_ENV = "STRATEGOS_SECURITY_REPORT"
_ROWS: list[dict[str, str]] = []
BACKENDS = ("local", "gvisor", "e2b")


@dataclass
class Harness:
    """A backend under attack plus what the host-state checks need to know about it."""

    name: str
    sandbox: Any
    workspace_root: Path
    state_root: Path | None = None
    notes: list[str] = field(default_factory=list)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    target = os.environ.get(REPORT_ENV)
    if target and _ROWS:
        Path(target).write_text(json.dumps(_ROWS, indent=1))


@pytest.fixture(scope="session")
def security_root() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="strategos-security-"))
    os.chmod(root, 0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def local_harness(security_root: Path) -> Harness:
    root = security_root / "local"
    root.mkdir()
    return Harness("local", LocalSandbox(workspace_root=root), root)


@pytest.fixture(scope="session")
def gvisor_harness(security_root: Path) -> Iterator[Harness]:
    from tools.sandbox.gvisor import GVisorSandbox

    root = security_root / "gvisor"
    root.mkdir()
    state = security_root / "runsc-state"
    try:
        sandbox = GVisorSandbox(workspace_root=root, state_root=state)
    except SandboxUnavailable as exc:
        pytest.skip(f"gVisor cannot run here: {exc}")
    yield Harness("gvisor", sandbox, root, state_root=state)
    sandbox.close()


@pytest.fixture(scope="session")
def e2b_harness(security_root: Path) -> Iterator[Harness]:
    from tools.sandbox.e2b import E2BSandbox
    from tools.sandbox.executor import ExecutorServer

    root = security_root / "e2b"
    root.mkdir()
    with ExecutorServer(workspace_root=root) as server:
        yield Harness("e2b", E2BSandbox(debug=True, sandbox_url=server.url), root)


@pytest.fixture
async def harness(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Harness]:
    """The backend named by the test's `backend` parameter, with the host checked after."""
    name = request.param if hasattr(request, "param") else "local"
    harness: Harness = request.getfixturevalue(f"{name}_harness")
    created: list[Path] = []
    original = RunCgroup.create.__func__  # type: ignore[attr-defined]

    def tracking_create(cls: type[RunCgroup], /, *args: Any, **kwargs: Any) -> RunCgroup:
        group: RunCgroup = original(cls, *args, **kwargs)
        created.extend(group.dirs.values())
        return group

    monkeypatch.setattr(RunCgroup, "create", classmethod(tracking_create))
    before = _host_state()
    yield harness
    _assert_host_unchanged(harness, before, created)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "harness" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("backends")
        names = marker.args if marker else BACKENDS
        metafunc.parametrize("harness", names, indirect=True, ids=list(names))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "backends(*names): backends an attack applies to")


@pytest.fixture
def record(request: pytest.FixtureRequest) -> Any:
    """Call with the outcome text of the attack; one row per (attack, backend)."""

    def _record(outcome: str) -> None:
        attack = request.node.originalname.removeprefix("test_")
        backend = request.node.callspec.params.get("harness", "local")
        _ROWS.append({"attack": attack, "backend": backend, "outcome": outcome})

    return _record


def _host_state() -> dict[str, Any]:
    return {
        "hostname": socket.gethostname(),
        "cgroups": _strategos_cgroups(),
    }


def _strategos_cgroups() -> set[str]:
    found: set[str] = set()
    for hierarchy in ("pids", "memory", "freezer"):
        base = Path("/sys/fs/cgroup") / hierarchy
        for path in base.rglob("strategos-*"):
            found.add(str(path))
    return found


def _assert_host_unchanged(harness: Harness, before: dict[str, Any], created: list[Path]) -> None:
    """No workspace, mount, cgroup or container of ours survives an attack."""
    assert socket.gethostname() == before["hostname"]
    assert list(harness.workspace_root.iterdir()) == [], "a workspace survived the run"
    mounts = Path("/proc/mounts").read_text()
    assert str(harness.workspace_root) not in mounts, "a workspace mount survived the run"
    survivors = [str(path) for path in created if path.exists()]
    assert not survivors, f"run cgroups survived: {survivors}"
    # Ours only: another process on the machine may be running gVisor sandboxes meanwhile.
    mine = f"strategos-gvisor-{current_owner().tag}-"
    deadline = time.monotonic() + 3
    new: set[str] = set()
    while time.monotonic() < deadline:
        new = {p for p in _strategos_cgroups() - before["cgroups"] if mine in p}
        if not new:
            break
        time.sleep(0.1)
    assert not new, f"gVisor cgroups survived: {sorted(new)}"
    if harness.state_root is not None:
        listing = subprocess.run(
            ["runsc", f"--root={harness.state_root}", "list", "-quiet"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert listing.stdout.strip() == "", f"containers survived: {listing.stdout}"


def sandbox_of(harness: Harness) -> Sandbox:
    return harness.sandbox  # type: ignore[no-any-return]
