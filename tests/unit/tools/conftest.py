"""Fixtures for the tool-platform unit tests: an embedded ledger and a scripted sandbox."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path

import pytest

from tools.ledger import SqliteLedger
from tools.sandbox import SandboxLimits, SandboxResult


class ScriptedSandbox:
    """A `Sandbox` that records what it was asked to run and answers with a fixed result."""

    def __init__(self, stdout: str = "ran\n", exit_code: int = 0) -> None:
        self.calls: list[tuple[dict[str, str], list[str]]] = []
        self.stdout = stdout
        self.exit_code = exit_code

    async def run(
        self,
        files: Mapping[str, str],
        command: Sequence[str],
        limits: SandboxLimits | None = None,
    ) -> SandboxResult:
        self.calls.append((dict(files), list(command)))
        return SandboxResult(
            exit_code=self.exit_code,
            stdout=self.stdout,
            stderr="",
            timed_out=False,
            duration_s=0.01,
            output_truncated=False,
        )

    async def run_python(
        self, files: Mapping[str, str], entry: str, limits: SandboxLimits | None = None
    ) -> SandboxResult:
        return await self.run(files, ["python3", entry], limits)


@pytest.fixture
def sandbox() -> ScriptedSandbox:
    return ScriptedSandbox()


class Clock:
    """A settable clock for lease expiry without sleeping."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def ledger(tmp_path: Path, clock: Clock) -> AsyncIterator[SqliteLedger]:
    store = SqliteLedger(tmp_path / "ledger.db", clock=clock)
    await store.setup()
    yield store
    await store.close()


@pytest.fixture(scope="session", autouse=True)
async def _stop_math_worker() -> AsyncIterator[None]:
    """The math tool keeps a worker process per event loop; stop it when the tests end."""
    from tools.builtin.math_eval import shutdown_worker

    yield
    await shutdown_worker()
