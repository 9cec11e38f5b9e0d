"""The local sandbox's hardening layers, observed from the host: cgroup, uid, tmpfs, pool."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from tools.sandbox import LocalSandbox, SandboxLimits, SandboxUnavailable, make_sandbox
from tools.sandbox.cgroups import RunCgroup, detect_cgroups

WATCH = """
import os, time
print(os.getpid(), flush=True)
time.sleep(float(os.environ.get('HOLD', '1.5')))
"""


@pytest.fixture(scope="module")
def sandbox() -> LocalSandbox:
    return LocalSandbox()


def _runs_user_code(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:2] == [b"python3", b"w.py"]
    except OSError:
        return False


def _host_status(pid: int) -> dict[str, str]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


async def test_run_is_confined_in_its_own_cgroup_as_host_nobody(
    sandbox: LocalSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    await sandbox.run({}, ["true"])  # probe first, so the only cgroup created below is the run's
    groups: list[RunCgroup] = []
    original = RunCgroup.create.__func__  # type: ignore[attr-defined]

    def spy(cls: type[RunCgroup], /, *args: object, **kwargs: object) -> RunCgroup:
        group: RunCgroup = original(cls, *args, **kwargs)
        groups.append(group)
        return group

    monkeypatch.setattr(RunCgroup, "create", classmethod(spy))
    task = asyncio.ensure_future(
        sandbox.run({"w.py": WATCH}, ["python3", "w.py"], SandboxLimits(max_processes=20))
    )
    for _ in range(200):
        await asyncio.sleep(0.02)
        # Wait until user code runs (bubblewrap's child briefly holds capabilities in its own
        # new user namespace while it sets the sandbox up; they are dropped before exec).
        if groups and any(_runs_user_code(pid) for pid in groups[-1].members()):
            break
    group = groups[-1]
    members = group.members()
    assert len(members) >= 2  # bubblewrap + the command
    assert (group.dirs["pids"] / "pids.max").read_text().strip() == "21"
    limit = int((group.dirs["memory"] / "memory.limit_in_bytes").read_text())
    assert limit == 512 * 1024 * 1024
    # Every process of the run is uid 65534 for the host kernel too, with no capabilities.
    for pid in members:
        status = _host_status(pid)
        assert status["Uid"].split()[0] == "65534"
        assert int(status["CapEff"], 16) == 0
    result = await task
    assert result.ok, result.stderr
    assert all(not path.exists() for path in group.dirs.values())


async def test_workspace_is_a_size_capped_tmpfs(sandbox: LocalSandbox) -> None:
    code = "import os\ns = os.statvfs('.')\nprint(s.f_blocks * s.f_frsize // (1024 * 1024))\n"
    result = await sandbox.run({"m.py": code}, ["python3", "m.py"], SandboxLimits(disk_mb=48))
    assert result.ok, result.stderr
    assert int(result.stdout) == 48


async def test_fork_bomb_hits_the_pids_limit_not_the_clock(sandbox: LocalSandbox) -> None:
    code = (
        "import os, time\nn = 0\ntry:\n    while True:\n        if os.fork() == 0:\n"
        "            time.sleep(5)\n            os._exit(0)\n        n += 1\n"
        "except OSError as exc:\n    print('EAGAIN after', n, exc.errno)\n"
    )
    result = await sandbox.run({}, ["python3", "-c", code], SandboxLimits(max_processes=16))
    assert "EAGAIN after 15 11" in result.stdout, result
    assert "processes" in result.limits_hit
    assert result.duration_s < 3


async def test_collect_reads_back_regular_files_only(sandbox: LocalSandbox) -> None:
    code = (
        "import os\nos.makedirs('out')\nopen('out/r.txt', 'w').write('report')\n"
        "os.symlink('/usr/lib/os-release', 'out/link.txt')\n"
    )
    result = await sandbox.run(
        {}, ["python3", "-c", code], collect=["out/r.txt", "out/link.txt", "missing.txt"]
    )
    assert result.ok, result.stderr
    assert result.files == {"out/r.txt": "report"}


def test_strict_mode_fails_closed_without_cgroups(monkeypatch: pytest.MonkeyPatch) -> None:
    from tools.sandbox import local

    def no_cgroups() -> object:
        return detect_cgroups(Path("/nonexistent-cgroup-root"))

    monkeypatch.setattr(local, "detect_cgroups", no_cgroups)
    with pytest.raises(SandboxUnavailable, match="cgroup v1 hierarchy"):
        LocalSandbox()
    relaxed = LocalSandbox(strict=False)
    assert relaxed.isolation["cgroup"] == []


async def test_relaxed_sandbox_without_cgroups_still_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    from tools.sandbox import local

    monkeypatch.setattr(
        local, "detect_cgroups", lambda: detect_cgroups(Path("/nonexistent-cgroup-root"))
    )
    result = await LocalSandbox(strict=False).run({}, ["id", "-u"])
    assert result.stdout.strip() == "65534"


async def test_warm_pool_runs_are_isolated_and_single_use() -> None:
    sandbox = LocalSandbox(pool_size=2)
    try:
        await sandbox.start_pool()
        assert len(sandbox._idle) == 2
        first = await sandbox.run(
            {"a.txt": "one"},
            [
                "python3",
                "-c",
                "import os; open('/tmp/x', 'w'); open('b.txt', 'w')\nprint(os.listdir('.'))",
            ],
        )
        assert first.ok, first.stderr
        assert sorted(eval(first.stdout)) == ["a.txt", "b.txt"]
        second = await sandbox.run(
            {},
            [
                "python3",
                "-c",
                "import os\nprint(os.listdir('.'), os.path.exists('/tmp/x'), os.getpid())",
            ],
        )
        assert second.stdout.strip() == "[] False 1"
        # Limits apply to pooled sandboxes too.
        bomb = await sandbox.run(
            {}, ["python3", "-c", "x = bytearray(300 * 1024 * 1024)"], SandboxLimits(memory_mb=512)
        )
        assert bomb.ok
        limited = await sandbox.run(
            {}, ["python3", "-c", "x = bytearray(300 * 1024 * 1024)"], SandboxLimits(memory_mb=128)
        )
        assert "MemoryError" in limited.stderr
        env = await sandbox.run({}, ["env"])
        assert sorted(line.split("=")[0] for line in env.stdout.splitlines()) == [
            "HOME",
            "LANG",
            "PATH",
            "PWD",
            "PYTHONDONTWRITEBYTECODE",
            "PYTHONUNBUFFERED",
        ]
    finally:
        await sandbox.aclose()
    assert sandbox._idle == []


async def test_timeout_kills_everything_in_the_cgroup(sandbox: LocalSandbox) -> None:
    code = (
        "import os, subprocess, sys, time\n"
        "for _ in range(5):\n"
        "    child = 'import os, time; os.setsid(); time.sleep(60)'\n"
        "    subprocess.Popen([sys.executable, '-c', child])\n"
        "time.sleep(60)\n"
    )
    result = await sandbox.run({}, ["python3", "-c", code], SandboxLimits(timeout_s=1.5))
    assert result.timed_out
    assert result.duration_s < 4


def test_make_sandbox_builds_backends_by_name() -> None:
    assert isinstance(make_sandbox("local"), LocalSandbox)
    with pytest.raises(ValueError, match="Unknown sandbox backend"):
        make_sandbox("docker")  # type: ignore[arg-type]


def test_cgroup_detection_nests_under_our_own_cgroup() -> None:
    support = detect_cgroups()
    own = Path("/proc/self/cgroup").read_text()
    memory_path = next(line.split(":", 2)[2] for line in own.splitlines() if ":memory:" in line)
    assert str(support.parents["memory"]).endswith(memory_path.rstrip("/") or "/memory")
    assert os.access(support.parents["pids"], os.W_OK)


async def test_seccomp_refuses_unneeded_kernel_surfaces(sandbox: LocalSandbox) -> None:
    code = (
        "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "for nr in (250, 321, 425, 101, 39):\n"
        "    r = libc.syscall(nr, 0, 0, 0, 0)\n"
        "    print(r, ctypes.get_errno() if r < 0 else 0)\n"
    )
    result = await sandbox.run({}, ["python3", "-c", code])
    assert result.ok, result.stderr
    # keyctl, bpf, io_uring_setup, ptrace -> EPERM; getpid still works (pid 1).
    assert result.stdout.split("\n")[:5] == ["-1 1", "-1 1", "-1 1", "-1 1", "1 0"]
    assert "keyctl" in sandbox.isolation["seccomp"]  # type: ignore[operator]
