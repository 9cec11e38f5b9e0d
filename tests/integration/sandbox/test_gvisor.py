"""gVisor backend end to end with the real `runsc run` (platform ptrace)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools.sandbox import Sandbox, SandboxLimits, SandboxUnavailable, make_sandbox
from tools.sandbox.gvisor import GVisorSandbox


@pytest.fixture(scope="module")
def gvisor() -> Iterator[GVisorSandbox]:
    try:
        sandbox = GVisorSandbox()
    except SandboxUnavailable as exc:
        pytest.skip(f"runsc cannot run here: {exc}")
    yield sandbox
    sandbox.close()


def test_spec_has_the_required_isolation(gvisor: GVisorSandbox, tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    spec = gvisor.spec(
        "abc", tmp_path, ["python3", "m.py"], SandboxLimits(memory_mb=256), tmp=scratch
    )
    assert spec["root"]["readonly"] is True
    assert spec["process"]["user"] == {"uid": 65534, "gid": 65534, "additionalGids": []}
    assert spec["process"]["noNewPrivileges"] is True
    assert all(caps == [] for caps in spec["process"]["capabilities"].values())
    assert spec["process"]["env"] == [
        "PATH=/usr/bin:/bin",
        "HOME=/workspace",
        "LANG=C.UTF-8",
        "PYTHONDONTWRITEBYTECODE=1",
        "PYTHONUNBUFFERED=1",
    ]
    kinds = {ns["type"] for ns in spec["linux"]["namespaces"]}
    assert kinds == {"pid", "network", "ipc", "uts", "mount"}
    mounts = {m["destination"]: m for m in spec["mounts"]}
    assert "ro" in mounts["/usr"]["options"]
    assert mounts["/tmp"]["source"] == str(scratch)  # the capped scratch tmpfs, not the Sentry's
    assert mounts["/workspace"]["source"] == str(tmp_path)
    assert "rw" in mounts["/workspace"]["options"]
    resources = spec["linux"]["resources"]
    assert resources["pids"]["limit"] >= 256
    assert resources["memory"]["limit"] == (256 + gvisor.memory_overhead_mb) * 1024 * 1024
    assert "--network=none" in gvisor.global_flags()
    assert "do" not in gvisor.global_flags()
    json.dumps(spec)


async def test_runs_python_and_reads_files_back(gvisor: GVisorSandbox) -> None:
    assert isinstance(gvisor, Sandbox)
    files = {"pkg/__init__.py": "", "pkg/m.py": "X = 'héllo'", "main.py": "from pkg.m import X\n"}
    files["main.py"] += (
        "import os\nprint(X, os.getuid(), os.getcwd())\nopen('out.txt', 'w').write('done')\n"
    )
    result = await gvisor.run_python(files, "main.py", collect=["out.txt"])
    assert result.ok, result.stderr
    assert result.stdout == "héllo 65534 /workspace\n"
    assert result.files == {"out.txt": "done"}


async def test_kernel_is_gvisor_not_the_host(gvisor: GVisorSandbox) -> None:
    result = await gvisor.run({}, ["python3", "-c", "import os; print(os.uname().release)"])
    host = Path("/proc/sys/kernel/osrelease").read_text().strip()
    assert result.ok, result.stderr
    assert result.stdout.strip() != host  # the Sentry reports its own kernel version


async def test_failure_timeout_and_limits(gvisor: GVisorSandbox) -> None:
    failed = await gvisor.run_python({"m.py": "raise SystemExit('boom')"}, "m.py")
    assert failed.exit_code == 1 and "boom" in failed.stderr
    slow = await gvisor.run({}, ["sleep", "30"], SandboxLimits(timeout_s=1))
    assert slow.timed_out and slow.duration_s < 4
    cpu = await gvisor.run({}, ["python3", "-c", "while True: pass"], SandboxLimits(cpu_s=1))
    assert "cpu" in cpu.limits_hit and not cpu.timed_out
    loud = await gvisor.run(
        {}, ["python3", "-c", "print('x' * 100000)"], SandboxLimits(max_output_bytes=100)
    )
    assert loud.output_truncated and len(loud.stdout) == 100


async def test_no_state_left_behind(gvisor: GVisorSandbox) -> None:
    await gvisor.run({}, ["true"])
    assert [p for p in gvisor.state_root.iterdir() if p.is_dir()] == []


def test_factory_and_missing_runsc() -> None:
    if shutil.which("runsc"):
        sandbox = make_sandbox("gvisor")
        assert isinstance(sandbox, GVisorSandbox)
        sandbox.close()
    with pytest.raises(SandboxUnavailable, match="apt-get install runsc"):
        GVisorSandbox(runsc="definitely-not-runsc")


async def test_threads_and_subprocesses_work(gvisor: GVisorSandbox) -> None:
    code = (
        "import subprocess, sys, threading\n"
        "t = threading.Thread(target=print, args=('thread',))\nt.start()\nt.join()\n"
        "print(subprocess.run([sys.executable, '-c', 'print(7)'], capture_output=True).stdout)\n"
    )
    result = await gvisor.run({}, ["python3", "-c", code])
    assert result.ok, result.stderr
    assert result.stdout == "thread\nb'7\\n'\n"
