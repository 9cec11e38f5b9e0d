"""The local bubblewrap sandbox, end to end: real bwrap, nothing mocked."""

from __future__ import annotations

import asyncio
import socket
import tempfile
import uuid
from pathlib import Path

import pytest

from tools.sandbox import (
    InvalidWorkspacePath,
    LocalSandbox,
    Sandbox,
    SandboxLimits,
    SandboxUnavailable,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]

READ_FILE = """
import sys
for path in sys.argv[1:]:
    try:
        with open(path) as f:
            print("READ", path, f.read())
    except OSError as exc:
        print("DENIED", path, type(exc).__name__)
"""

CONNECT = """
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
try:
    socket.create_connection((host, port), timeout=3).close()
    print("CONNECTED")
except OSError as exc:
    print("BLOCKED", type(exc).__name__, exc)
"""


@pytest.fixture(scope="module")
def sandbox() -> LocalSandbox:
    return LocalSandbox()


@pytest.fixture
def workspace_root(tmp_path: Path) -> Path:
    root = tmp_path / "workspaces"
    root.mkdir()
    return root


def test_local_sandbox_satisfies_protocol(sandbox: LocalSandbox) -> None:
    assert isinstance(sandbox, Sandbox)


def test_missing_bwrap_is_reported_with_install_hint() -> None:
    with pytest.raises(SandboxUnavailable, match="apt-get install bubblewrap"):
        LocalSandbox(bwrap="definitely-not-bwrap")


async def test_passing_script_returns_exit_0_and_stdout(sandbox: LocalSandbox) -> None:
    files = {"main.py": "from pkg.util import greet\nprint(greet())\n", "pkg/__init__.py": ""}
    files["pkg/util.py"] = "def greet():\n    return open('data/name.txt').read().strip()\n"
    files["data/name.txt"] = "héllo sandbox\n"
    result = await sandbox.run_python(files, "main.py")
    assert result.ok, result.stderr
    assert result.exit_code == 0
    assert result.stdout == "héllo sandbox\n"
    assert not result.timed_out and not result.output_truncated


async def test_failing_script_reports_exit_code_and_stderr(sandbox: LocalSandbox) -> None:
    result = await sandbox.run_python({"main.py": "raise SystemExit('boom')"}, "main.py")
    assert not result.ok
    assert result.exit_code == 1
    assert "boom" in result.stderr


async def test_written_files_do_not_leak_to_host(workspace_root: Path) -> None:
    sandbox = LocalSandbox(workspace_root=workspace_root)
    name = f"leak-{uuid.uuid4().hex}.txt"
    code = f"""
import os
for d in ('.', '/tmp', '/dev/shm'):
    with open(os.path.join(d, {name!r}), 'w') as f:
        f.write('x')
print(os.getcwd(), sorted(os.listdir('.')))
"""
    result = await sandbox.run_python({"main.py": code}, "main.py")
    assert result.ok, result.stderr
    assert result.stdout.startswith("/workspace")
    assert name in result.stdout
    # The per-run workspace is gone, and nothing was written to the host's temp dir.
    assert list(workspace_root.iterdir()) == []
    assert not (Path(tempfile.gettempdir()) / name).exists()
    # A second run starts from a clean workspace.
    again = await sandbox.run_python(
        {"main.py": f"import os; print(os.path.exists({name!r}), os.path.exists('/tmp/{name}'))"},
        "main.py",
    )
    assert again.stdout.strip() == "False False"


async def test_host_files_outside_workspace_are_unreadable(
    sandbox: LocalSandbox, tmp_path: Path
) -> None:
    secret = f"secret-{uuid.uuid4().hex}"
    host_tmp_secret = tmp_path / "secret.txt"
    host_tmp_secret.write_text(secret)
    with tempfile.TemporaryDirectory(prefix=".sandbox-test-", dir=PROJECT_ROOT) as project_dir:
        project_secret = Path(project_dir) / "secret.txt"
        project_secret.write_text(secret)
        paths = [
            "/etc/shadow",
            "/etc/passwd",
            str(host_tmp_secret),
            str(project_secret),
            str(PROJECT_ROOT / "pyproject.toml"),
        ]
        result = await sandbox.run({"read.py": READ_FILE}, ["python3", "read.py", *paths])
    assert result.ok, result.stderr
    assert secret not in result.stdout
    assert "READ" not in result.stdout
    for path in paths:
        assert f"DENIED {path}" in result.stdout


async def test_sandbox_cannot_write_to_system_dirs(sandbox: LocalSandbox) -> None:
    code = "open('/usr/evil', 'w')"
    result = await sandbox.run_python({"main.py": code}, "main.py")
    assert not result.ok
    assert "OSError" in result.stderr or "Read-only file system" in result.stderr
    assert not Path("/usr/evil").exists()


@pytest.mark.parametrize("port", [5432, 6379])
async def test_host_services_on_loopback_are_unreachable(sandbox: LocalSandbox, port: int) -> None:
    result = await sandbox.run({"c.py": CONNECT}, ["python3", "c.py", "127.0.0.1", str(port)])
    assert result.ok, result.stderr
    assert result.stdout.startswith("BLOCKED"), result.stdout


async def test_own_host_listener_is_unreachable(sandbox: LocalSandbox) -> None:
    # A listener we own proves the host side is reachable from here but not from the sandbox.
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=3):
            pass
        result = await sandbox.run({"c.py": CONNECT}, ["python3", "c.py", "127.0.0.1", str(port)])
    finally:
        server.close()
        await server.wait_closed()
    assert result.stdout.startswith("BLOCKED"), result.stdout


async def test_dns_and_udp_fail(sandbox: LocalSandbox) -> None:
    # 192.0.2.1 is TEST-NET-1 (RFC 5737): never routed, so no real host is contacted.
    code = """
import socket
print("interfaces", sorted(name for _, name in socket.if_nameindex()))
try:
    socket.getaddrinfo("pypi.org", 443)
    print("DNS OK")
except OSError as exc:
    print("DNS BLOCKED", type(exc).__name__)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    s.sendto(b"x", ("192.0.2.1", 53))
    print("UDP OK")
except OSError as exc:
    print("UDP BLOCKED", exc.errno)
"""
    result = await sandbox.run_python({"main.py": code}, "main.py")
    assert result.ok, result.stderr
    assert "interfaces ['lo']" in result.stdout
    assert "DNS BLOCKED" in result.stdout
    assert "UDP BLOCKED" in result.stdout


async def test_code_runs_as_nobody(sandbox: LocalSandbox) -> None:
    result = await sandbox.run({}, ["id", "-u"])
    assert result.ok, result.stderr
    assert result.stdout.strip() == "65534"


async def test_host_environment_is_not_visible(
    sandbox: LocalSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRATEGOS_SECRET_TOKEN", "tok-very-secret")
    result = await sandbox.run({}, ["env"])
    assert result.ok, result.stderr
    assert "STRATEGOS_SECRET_TOKEN" not in result.stdout
    assert "tok-very-secret" not in result.stdout
    env = dict(line.split("=", 1) for line in result.stdout.splitlines())
    assert env["PATH"] == "/usr/bin:/bin"
    assert env["HOME"] == "/workspace"


async def test_infinite_loop_is_killed_at_wall_clock_timeout(sandbox: LocalSandbox) -> None:
    result = await sandbox.run(
        {"main.py": "while True:\n    pass\n"},
        ["python3", "main.py"],
        SandboxLimits(timeout_s=2, cpu_s=30),
    )
    assert result.timed_out
    assert not result.ok
    assert 2 <= result.duration_s < 4


async def test_process_tree_is_killed_at_timeout(sandbox: LocalSandbox) -> None:
    # A background child holding the pipes must neither keep the run alive nor survive it.
    marker = f"sandbox-survivor-{uuid.uuid4().hex}"
    code = (
        "import subprocess, sys, time\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)', sys.argv[1]])\n"
        "time.sleep(60)\n"
    )
    result = await sandbox.run(
        {"main.py": code}, ["python3", "main.py", marker], SandboxLimits(timeout_s=1)
    )
    assert result.timed_out
    assert result.duration_s < 3
    assert not [p for p in Path("/proc").glob("[0-9]*/cmdline") if _has_marker(p, marker)]


def _has_marker(cmdline: Path, marker: str) -> bool:
    try:
        return marker.encode() in cmdline.read_bytes()
    except OSError:
        return False


async def test_cpu_limit_kills_busy_loop(sandbox: LocalSandbox) -> None:
    result = await sandbox.run(
        {}, ["python3", "-c", "while True: pass"], SandboxLimits(timeout_s=10, cpu_s=1)
    )
    assert not result.ok
    assert not result.timed_out
    assert result.duration_s < 5


async def test_memory_bomb_fails(sandbox: LocalSandbox) -> None:
    code = "chunks = []\nwhile True:\n    chunks.append(bytearray(16 * 1024 * 1024))\n"
    result = await sandbox.run_python({"main.py": code}, "main.py", SandboxLimits(memory_mb=128))
    assert not result.ok
    assert not result.timed_out
    assert "MemoryError" in result.stderr


async def test_file_size_and_open_files_limits(sandbox: LocalSandbox) -> None:
    code = """
try:
    with open("big.bin", "wb") as f:
        f.write(b"x" * (2 * 1024 * 1024))
    print("WROTE")
except OSError as exc:
    print("FSIZE", exc.errno)
handles = []
try:
    for i in range(100):
        handles.append(open("main.py"))
    print("OPENED")
except OSError as exc:
    print("NOFILE", exc.errno)
"""
    limits = SandboxLimits(file_size_mb=1, open_files=32)
    result = await sandbox.run_python({"main.py": code}, "main.py", limits)
    assert result.ok, result.stderr
    assert "FSIZE 27" in result.stdout  # EFBIG
    assert "NOFILE 24" in result.stdout  # EMFILE


async def test_huge_output_is_truncated(sandbox: LocalSandbox) -> None:
    code = "import sys\nsys.stdout.write('x' * 20_000_000)\nsys.stderr.write('e' * 5_000)\n"
    result = await sandbox.run_python(
        {"main.py": code}, "main.py", SandboxLimits(max_output_bytes=1_000)
    )
    assert result.ok, result.stderr
    assert result.output_truncated
    assert result.stdout == "x" * 1_000
    assert result.stderr == "e" * 1_000


@pytest.mark.parametrize("key", ["../x", "/etc/x", "a/../../x", "", "a//b", "./x"])
async def test_invalid_file_keys_are_rejected(sandbox: LocalSandbox, key: str) -> None:
    with pytest.raises(InvalidWorkspacePath):
        await sandbox.run({key: "x"}, ["true"])


def test_invalid_limits_are_rejected() -> None:
    with pytest.raises(ValueError):
        SandboxLimits(timeout_s=0)
    with pytest.raises(ValueError):
        SandboxLimits(memory_mb=-1)


async def test_command_must_be_an_argument_list(sandbox: LocalSandbox) -> None:
    with pytest.raises(ValueError, match="list of arguments"):
        await sandbox.run({}, "python3 main.py")
