"""Fault injection: a process SIGKILLed mid-run leaks its sandbox; the janitor removes the leak.

A child process starts a real sandboxed run (a snippet that sleeps) and is SIGKILLed while it
runs. Its mounts, cgroups and directories (and, for gVisor, a running container) stay behind;
`sweep_orphans` removes them, while a run of this (live) process, going on meanwhile, keeps
its resources and completes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.integration.sandbox.leftovers import Leftovers, owner, started_workspace, wait_for
from tools.sandbox import LocalSandbox, Sandbox, SandboxLimits, SandboxUnavailable
from tools.sandbox.cgroups import detect_cgroups
from tools.sandbox.janitor import sweep_orphans
from tools.sandbox.markers import Owner, current_owner

REPO = Path(__file__).resolve().parents[3]

# The doomed process: builds the backend as the service does and runs a snippet that sleeps.
CHILD = """
import asyncio, sys
from tools.sandbox import SandboxLimits, make_sandbox

SNIPPET = "open('started', 'w').close()\\nimport time\\ntime.sleep(3600)\\n"

async def main():
    sandbox = make_sandbox(sys.argv[1])
    limits = SandboxLimits(timeout_s=3600, cpu_s=60)
    await sandbox.run({'main.py': SNIPPET}, ['python3', 'main.py'], limits)

asyncio.run(main())
"""

# A janitor in a process of its own, printing its report as JSON.
JANITOR = (
    "import json\n"
    "from dataclasses import asdict\n"
    "from tools.sandbox.janitor import sweep_orphans\n"
    "print(json.dumps(asdict(sweep_orphans())))\n"
)

# A service process starting up: builds the configured backend, as `service.deps` does.
STARTUP = (
    "import logging, sys\n"
    "logging.basicConfig(level=logging.INFO)\n"
    "from tools.sandbox import make_sandbox\n"
    "make_sandbox(sys.argv[1])\n"
)

# The live run: says it started, then waits for the test to let it finish.
LIVE = (
    "import os, time\n"
    "open('started', 'w').close()\n"
    "while not os.path.exists('go'):\n"
    "    time.sleep(0.05)\n"
    "print('finished', sorted(os.listdir('.')))\n"
)


@pytest.fixture(params=["local", "gvisor"])
def backend(request: pytest.FixtureRequest) -> Iterator[tuple[str, Sandbox]]:
    """A backend name and an in-process sandbox of that backend for the live run."""
    if request.param == "local":
        yield "local", LocalSandbox()
        return
    from tools.sandbox.gvisor import GVisorSandbox

    try:
        gvisor = GVisorSandbox()
    except SandboxUnavailable as exc:
        pytest.skip(f"runsc cannot run here: {exc}")
    yield "gvisor", gvisor
    gvisor.close()


@pytest.fixture
async def killed(backend: tuple[str, Sandbox]) -> AsyncIterator[Owner]:
    """A child SIGKILLed while its sandboxed snippet runs; its leftovers are swept at the end."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, backend[0]],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )
    try:
        dead = owner(child.pid)

        def started() -> Path | None:
            assert child.poll() is None, "the doomed child exited before its snippet started"
            return started_workspace(dead)

        await wait_for(started, "the doomed run's snippet start")
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        yield dead
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
        sweep_orphans()  # the test may have failed before its own sweep


def assert_leaked(name: str, leaked: Leftovers) -> None:
    """What a SIGKILLed run leaves without a janitor."""
    assert leaked.kinds(leaked.mounts) == {"ws", "tmp"}
    if name == "local":
        assert leaked.kinds(leaked.directories) == {"ws", "tmp"}
        assert leaked.kinds(leaked.cgroups) == {"run"}
        assert len(leaked.cgroups) == len(detect_cgroups().parents)  # pids, memory, freezer
    else:
        assert leaked.kinds(leaked.directories) == {"ws", "tmp", "state", "rootfs", "bundle"}
        assert leaked.kinds(leaked.cgroups) == {"gvisor"}
        assert leaked.processes, "the orphaned runsc container is still running"


def assert_gone(dead: Owner) -> None:
    after = Leftovers.of(dead)
    assert after.mounts == ()
    assert after.cgroups == ()
    assert after.directories == ()
    assert after.processes == ()


async def test_janitor_removes_a_killed_runs_leftovers_and_spares_a_live_run(
    backend: tuple[str, Sandbox], killed: Owner
) -> None:
    name, sandbox = backend
    live_run = asyncio.ensure_future(
        sandbox.run({"main.py": LIVE}, ["python3", "main.py"], SandboxLimits(timeout_s=600))
    )
    try:
        live_workspace = await wait_for(
            lambda: started_workspace(current_owner()), "the live run's snippet start"
        )
        assert_leaked(name, Leftovers.of(killed))
        live_before = Leftovers.of(current_owner())

        report = await asyncio.to_thread(sweep_orphans)

        assert_gone(killed)
        # Nothing of the live run was removed, or even reported.
        assert f"-{current_owner().tag}-" not in report.summary()
        live_after = Leftovers.of(current_owner())
        assert live_after.mounts == live_before.mounts
        assert live_after.cgroups == live_before.cgroups
        assert set(live_before.directories) <= set(live_after.directories)

        (live_workspace / "go").write_text("")
        result = await live_run
        assert result.ok, result.stderr
        assert result.stdout == "finished ['go', 'main.py', 'started']\n"
    finally:
        if not live_run.done():
            live_run.cancel()
            with contextlib.suppress(BaseException):
                await live_run


async def test_two_janitor_processes_at_once_remove_each_leftover_once(
    backend: tuple[str, Sandbox], killed: Owner
) -> None:
    assert_leaked(backend[0], Leftovers.of(killed))
    janitors = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", JANITOR, cwd=REPO, stdout=asyncio.subprocess.PIPE
        )
        for _ in range(2)
    ]
    outputs = await asyncio.gather(*(janitor.communicate() for janitor in janitors))
    assert [janitor.returncode for janitor in janitors] == [0, 0]
    assert_gone(killed)
    reports = [json.loads(stdout) for stdout, _ in outputs]
    tag = f"-{killed.tag}-"
    for kind in ("containers", "cgroups", "mounts", "directories"):
        removed = [item for report in reports for item in report[kind] if tag in item]
        assert len(removed) == len(set(removed)), f"{kind} removed twice: {removed}"


async def test_building_the_sandbox_sweeps_once_per_process(
    backend: tuple[str, Sandbox], killed: Owner
) -> None:
    """What `strategos run`, `resume` and `serve` do first: `make_sandbox` for the backend."""
    assert_leaked(backend[0], Leftovers.of(killed))
    service = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        STARTUP,
        backend[0],
        cwd=REPO,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await service.communicate()
    assert service.returncode == 0, stderr.decode()
    assert_gone(killed)
    lines = [line for line in stderr.decode().splitlines() if "sandbox janitor" in line]
    assert len(lines) == 1 and f"-{killed.tag}-" in lines[0], lines
