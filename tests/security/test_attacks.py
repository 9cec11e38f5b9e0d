"""Attacks on the sandboxes: each asserts it fails or is contained, and the host is unchanged.

Probe scripts print `BLOCKED <label> <reason>` for every attempt that failed and
`ESCAPED <label> <detail>` for any that worked; an attack passes when nothing escaped. The
`harness` fixture (conftest) also checks after each attack that no workspace, mount, cgroup or
container survived.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.security.conftest import Harness
from tools.sandbox import InvalidWorkspacePath, SandboxError, SandboxLimits, SandboxResult

REPO = Path(__file__).resolve().parents[2]
FAST = SandboxLimits(timeout_s=15, cpu_s=10)

PRELUDE = """\
import errno, os, socket, sys
def attempt(label, fn):
    try:
        value = fn()
    except BaseException as exc:
        code = errno.errorcode.get(getattr(exc, "errno", None) or 0, "")
        print("BLOCKED", label, type(exc).__name__ + " " + code, sep="\t", flush=True)
    else:
        print("ESCAPED", label, repr(value)[:300], sep="\t", flush=True)
def read(path):
    with open(path, "rb") as f:
        return f.read(200)
"""


async def probe(
    harness: Harness, body: str, limits: SandboxLimits = FAST, **files: str
) -> SandboxResult:
    result: SandboxResult = await harness.sandbox.run(
        {"attack.py": PRELUDE + body, **files}, ["python3", "attack.py"], limits
    )
    return result


def summary(result: SandboxResult) -> str:
    """'blocked: 3× PermissionError, 1× FileNotFoundError' from the probe lines."""
    reasons = Counter(
        line.split("\t")[2].strip() or "?"
        for line in result.stdout.splitlines()
        if line.startswith("BLOCKED\t")
    )
    return "blocked: " + ", ".join(f"{n}× {why}" for why, n in reasons.most_common())


def assert_contained(result: SandboxResult) -> None:
    assert "ESCAPED" not in result.stdout, result.stdout
    assert "BLOCKED" in result.stdout, (result.stdout, result.stderr)


# -- host files -------------------------------------------------------------------------


async def test_read_etc_shadow(harness: Harness, record: Callable[[str], None]) -> None:
    body = (
        "for p in ['/etc/shadow', '/etc/gshadow', '/etc/sudoers']:\n"
        "    attempt(p, lambda: read(p))\n"
    )
    result = await probe(harness, body)
    assert_contained(result)
    record(summary(result))


async def test_read_root_home(harness: Harness, record: Callable[[str], None]) -> None:
    body = (
        "attempt('list /root', lambda: os.listdir('/root'))\n"
        "for p in ['/root/.bashrc', '/root/.ssh/id_rsa', '/root/.pyenv/version']:\n"
        "    attempt(p, lambda: read(p))\n"
    )
    result = await probe(harness, body)
    assert_contained(result)
    record(summary(result))


async def test_read_project_files(harness: Harness, record: Callable[[str], None]) -> None:
    body = (
        f"attempt('list repo', lambda: os.listdir({str(REPO)!r}))\n"
        f"for p in [{str(REPO / 'pyproject.toml')!r}, {str(REPO / '.git' / 'config')!r},"
        f" {str(REPO / 'tools' / 'sandbox' / 'local.py')!r}]:\n"
        "    attempt(p, lambda: read(p))\n"
    )
    result = await probe(harness, body)
    assert_contained(result)
    record(summary(result))


@pytest.mark.backends("local", "gvisor")
async def test_read_host_tmp_and_ssh_keys(
    harness: Harness, record: Callable[[str], None], tmp_path: Path
) -> None:
    secret = f"host-secret-{uuid.uuid4().hex}"
    host_file = Path(tempfile.gettempdir()) / f"strategos-canary-{uuid.uuid4().hex}"
    host_file.write_text(secret)
    try:
        body = (
            f"for p in [{str(host_file)!r}, '/etc/ssh/ssh_host_ed25519_key',"
            " '/var/lib/postgresql', '/etc/machine-id']:\n"
            "    attempt(p, lambda: read(p) if not os.path.isdir(p) else os.listdir(p))\n"
        )
        result = await probe(harness, body)
    finally:
        host_file.unlink()
    assert secret not in result.stdout
    assert_contained(result)
    record(summary(result))


async def test_read_other_tasks_workspace(harness: Harness, record: Callable[[str], None]) -> None:
    secret = f"task-a-secret-{uuid.uuid4().hex}"
    victim = harness.sandbox.run(
        {"secret.txt": secret, "main.py": "import time; time.sleep(4)"},
        ["python3", "main.py"],
        SandboxLimits(timeout_s=8),
    )
    hunt = f"""
import glob
found = []
roots = [{str(harness.workspace_root)!r}, {tempfile.gettempdir()!r}, '/tmp', '/workspace/..', '/']
for root in roots:
    for pattern in ('*/secret.txt', '*/*/secret.txt', 'strategos-sandbox-*/secret.txt'):
        for path in glob.glob(os.path.join(root, pattern)):
            try:
                if {secret!r} in open(path).read():
                    found.append(path)
            except OSError:
                pass
for pid in os.listdir('/proc'):
    if pid.isdigit():
        path = '/proc/' + pid + '/root/workspace/secret.txt'
        attempt('proc ' + pid + ' root', lambda: read(path))
if found:
    print('ESCAPED', found)
attempt('victim workspace', lambda: os.listdir({str(harness.workspace_root)!r}))
"""
    await asyncio.sleep(0)
    victim_task = asyncio.ensure_future(victim)
    await asyncio.sleep(1.0)
    result = await probe(harness, hunt)
    victim_result = await victim_task
    assert victim_result.ok, victim_result.stderr
    assert secret not in result.stdout
    assert "ESCAPED" not in result.stdout, result.stdout
    record("not visible: concurrent run's workspace is a separate mount; " + summary(result))


# -- environment and /proc --------------------------------------------------------------


@pytest.fixture
def host_secret(monkeypatch: pytest.MonkeyPatch) -> str:
    value = f"sk-test-{uuid.uuid4().hex}"
    monkeypatch.setenv("STRATEGOS_FAKE_API_KEY", value)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", value)
    return value


async def test_environment_secrets(
    harness: Harness, record: Callable[[str], None], host_secret: str
) -> None:
    result = await harness.sandbox.run({}, ["python3", "-c", "import os; print(dict(os.environ))"])
    assert result.ok, result.stderr
    assert host_secret not in result.stdout
    assert "STRATEGOS_FAKE_API_KEY" not in result.stdout
    assert "AWS_SECRET_ACCESS_KEY" not in result.stdout
    names = sorted(re.findall(r"'([A-Z_]+)':", result.stdout))
    record(f"not visible: environment is {', '.join(names)}")


async def test_proc_environ_of_other_processes(
    harness: Harness, record: Callable[[str], None], host_secret: str
) -> None:
    code = """
import os
seen = []
for pid in sorted(p for p in os.listdir('/proc') if p.isdigit()):
    try:
        seen.append(open(f'/proc/{pid}/environ', 'rb').read().decode(errors='replace'))
    except OSError as exc:
        seen.append(type(exc).__name__)
print(len(seen), 'processes visible')
print('\\n'.join(seen))
"""
    result = await harness.sandbox.run({}, ["python3", "-c", code])
    assert result.ok, result.stderr
    assert host_secret not in result.stdout
    count = int(result.stdout.split()[0])
    assert count <= 4, result.stdout
    record(f"not visible: /proc shows {count} process(es), all inside the sandbox")


async def test_host_processes_invisible(harness: Harness, record: Callable[[str], None]) -> None:
    code = f"""
import os
mine = []
for pid in (p for p in os.listdir('/proc') if p.isdigit() and int(p) != os.getpid()):
    try:
        mine.append(open(f'/proc/{{pid}}/cmdline', 'rb').read().replace(b'\\0', b' ').decode())
    except OSError:
        pass
print(mine)
print('host pid', os.path.exists('/proc/{os.getpid()}/cmdline') and
      b'pytest' in open('/proc/{os.getpid()}/cmdline', 'rb').read())
"""
    result = await harness.sandbox.run({}, ["python3", "-c", code])
    assert result.ok, result.stderr
    assert "pytest" not in result.stdout.splitlines()[0]
    assert "host pid False" in result.stdout
    record("not visible: own pid namespace (pytest's pid absent)")


# -- devices, kernel interfaces, privileges ----------------------------------------------


async def test_raw_devices(harness: Harness, record: Callable[[str], None]) -> None:
    body = (
        "for p in ['/dev/vda', '/dev/sda', '/dev/kvm', '/dev/mem', '/dev/kmsg', '/dev/port']:\n"
        "    attempt(p, lambda: read(p))\n"
    )
    result = await probe(harness, body)
    assert_contained(result)
    record(summary(result))


async def test_kernel_tunables_and_sysrq(harness: Harness, record: Callable[[str], None]) -> None:
    body = (
        "def write(p, data):\n"
        "    with open(p, 'w') as f:\n"
        "        f.write(data)\n"
        "attempt('hostname', lambda: write('/proc/sys/kernel/hostname', 'pwned'))\n"
        "attempt('sysrq', lambda: write('/proc/sysrq-trigger', 'b'))\n"
        "attempt('core_pattern', lambda: write('/proc/sys/kernel/core_pattern', '|/tmp/x'))\n"
        "attempt('drop_caches', lambda: write('/proc/sys/vm/drop_caches', '3'))\n"
    )
    before = Path("/proc/sys/kernel/core_pattern").read_text()
    result = await probe(harness, body)
    assert_contained(result)
    assert Path("/proc/sys/kernel/core_pattern").read_text() == before
    record(summary(result))


@pytest.mark.backends("local", "gvisor")
async def test_privilege_escalation(harness: Harness, record: Callable[[str], None]) -> None:
    body = """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
def call(name, *args):
    if getattr(libc, name)(*args) != 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return 'ok'
attempt('setuid(0)', lambda: os.setuid(0))
attempt('unshare(NEWUSER)', lambda: call('unshare', 0x10000000))
attempt('mount tmpfs', lambda: call('mount', b'x', b'/tmp', b'tmpfs', 0, None))
attempt('chroot', lambda: os.chroot('/tmp'))
attempt('sethostname', lambda: call('sethostname', b'pwned', 5))
attempt('ptrace(ATTACH, 1)', lambda: call('ptrace', 16, 1, None, None))
attempt('su', lambda: os.execv('/usr/bin/su', ['su', '-c', 'id']))
"""
    result = await probe(harness, body)
    assert_contained(result)
    record(summary(result))


# -- network ----------------------------------------------------------------------------


async def test_tcp_egress(harness: Harness, record: Callable[[str], None]) -> None:
    # 192.0.2.1 is TEST-NET-1 (RFC 5737): never routed, so no real host can be reached.
    body = (
        "for addr in [('192.0.2.1', 80), ('192.0.2.1', 443)]:\n"
        "    attempt(str(addr), lambda: socket.create_connection(addr, timeout=2))\n"
    )
    result = await probe(harness, body)
    assert_contained(result)
    record(summary(result))


async def test_udp_egress(harness: Harness, record: Callable[[str], None]) -> None:
    body = """
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
attempt('sendto 192.0.2.1:53', lambda: s.sendto(b'x', ('192.0.2.1', 53)))
attempt('sendto 192.0.2.1:123', lambda: s.sendto(b'x', ('192.0.2.1', 123)))
"""
    result = await probe(harness, body)
    assert_contained(result)
    record(summary(result))


async def test_dns_resolution(harness: Harness, record: Callable[[str], None]) -> None:
    body = (
        "for name in ['pypi.org', 'example.com']:\n"
        "    attempt(name, lambda: socket.getaddrinfo(name, 443))\n"
    )
    result = await probe(harness, body, SandboxLimits(timeout_s=20))
    assert_contained(result)
    record(summary(result))


@pytest.mark.parametrize("port", [5432, 6379], ids=["postgresql", "redis"])
async def test_loopback_services(
    harness: Harness, record: Callable[[str], None], port: int
) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=3):
        pass  # the service is up on the host
    body = (
        f"attempt('127.0.0.1:{port}',"
        f" lambda: socket.create_connection(('127.0.0.1', {port}), timeout=2))\n"
    )
    result = await probe(harness, body)
    assert_contained(result)
    record(f"port {port}: " + summary(result))


async def test_host_listener_on_loopback(harness: Harness, record: Callable[[str], None]) -> None:
    hits: list[int] = []

    def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hits.append(1)
        writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        body = (
            "attempt('listener',"
            f" lambda: socket.create_connection(('127.0.0.1', {port}), timeout=2))\n"
        )
        result = await probe(harness, body)
    finally:
        server.close()
        await server.wait_closed()
    assert_contained(result)
    assert hits == []
    record("no connection reached the host listener; " + summary(result))


@pytest.mark.backends("local", "gvisor")
async def test_unix_sockets_and_raw_packets(
    harness: Harness, record: Callable[[str], None]
) -> None:
    body = """
def unix(path):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    return s
for path in ['/var/run/postgresql/.s.PGSQL.5432', '/run/docker.sock', '/tmp/.X11-unix/X0']:
    attempt(path, lambda: unix(path))
attempt('AF_PACKET', lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW))
attempt('raw ICMP', lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP))
"""
    result = await probe(harness, body)
    assert_contained(result)
    record(summary(result))


# -- resource exhaustion ------------------------------------------------------------------


def _marked_processes(marker: str) -> list[int]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if marker.encode() in cmdline.read_bytes():
                found.append(int(cmdline.parent.name))
        except OSError:
            pass
    return found


async def test_fork_bomb(harness: Harness, record: Callable[[str], None]) -> None:
    marker = f"forkbomb-{uuid.uuid4().hex}"
    code = (
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    )
    start = time.monotonic()
    result = await harness.sandbox.run(
        {}, ["python3", "-c", code, marker], SandboxLimits(timeout_s=3, cpu_s=3)
    )
    elapsed = time.monotonic() - start
    assert not result.ok
    assert elapsed < 15
    assert _marked_processes(marker) == []
    how = ", ".join(result.limits_hit) or f"exit {result.exit_code}"
    record(f"contained ({how}) in {elapsed:.1f} s; no process left on the host")


async def test_thread_bomb(harness: Harness, record: Callable[[str], None]) -> None:
    code = """
import threading, time
threading.stack_size(64 * 1024)  # small stacks: the process limit, not memory, must stop it
n = 0
try:
    while True:
        threading.Thread(target=time.sleep, args=(30,), daemon=True).start()
        n += 1
except (RuntimeError, MemoryError) as exc:
    print('STOPPED', n, type(exc).__name__)
"""
    limits = SandboxLimits(timeout_s=5, memory_mb=2048, max_processes=64)
    result = await harness.sandbox.run({}, ["python3", "-c", code], limits)
    assert result.timed_out or "STOPPED" in result.stdout or not result.ok, result
    if "STOPPED" in result.stdout:
        count = int(result.stdout.split()[1])
        assert count < 1000
        hits = ", ".join(result.limits_hit) or "none reported"
        record(f"contained: thread creation failed after {count} threads (limits hit: {hits})")
    else:
        record(f"contained ({', '.join(result.limits_hit) or result.exit_code})")


async def test_memory_bomb(harness: Harness, record: Callable[[str], None]) -> None:
    code = "chunks = []\nwhile True:\n    chunks.append(bytearray(16 * 1024 * 1024))\n"
    result = await harness.sandbox.run(
        {}, ["python3", "-c", code], SandboxLimits(memory_mb=128, timeout_s=20)
    )
    assert not result.ok
    assert not result.timed_out
    assert "MemoryError" in result.stderr or result.exit_code in (137, -9)
    record(
        "contained: " + ("MemoryError at 128 MiB" if "MemoryError" in result.stderr else "killed")
    )


@pytest.mark.backends("local", "gvisor")
async def test_memory_bomb_across_processes(
    harness: Harness, record: Callable[[str], None]
) -> None:
    # Each child stays under RLIMIT_AS; only a limit on the whole run stops the sum.
    code = """
import subprocess, sys
child = ('import time; x = bytearray(90 * 1024 * 1024); '
         'x[::4096] = b"x" * len(x[::4096]); time.sleep(3)')
kids = [subprocess.Popen([sys.executable, '-c', child]) for _ in range(6)]
print([k.wait() for k in kids])
"""
    result = await harness.sandbox.run(
        {}, ["python3", "-c", code], SandboxLimits(memory_mb=256, timeout_s=20)
    )
    codes = [int(c) for c in re.findall(r"-?\d+", result.stdout)]
    killed = [c for c in codes if c != 0]
    assert killed or not result.ok, result
    record(
        f"contained: exit {result.exit_code}, children's exit codes {codes or 'not reported'}"
        f" (limits hit: {', '.join(result.limits_hit) or 'none reported'})"
    )


async def test_cpu_loop(harness: Harness, record: Callable[[str], None]) -> None:
    start = time.monotonic()
    result = await harness.sandbox.run(
        {}, ["python3", "-c", "while True: pass"], SandboxLimits(timeout_s=6, cpu_s=1)
    )
    elapsed = time.monotonic() - start
    assert not result.ok
    assert elapsed < 12
    what = "cpu" if "cpu" in result.limits_hit or not result.timed_out else "timeout"
    record(f"killed by the {what} limit after {result.duration_s:.1f} s")


async def test_sleep_past_timeout(harness: Harness, record: Callable[[str], None]) -> None:
    marker = f"sleeper-{uuid.uuid4().hex}"
    result = await harness.sandbox.run(
        {}, ["python3", "-c", "import time; time.sleep(60)", marker], SandboxLimits(timeout_s=1)
    )
    assert result.timed_out
    assert result.duration_s < 5
    assert _marked_processes(marker) == []
    record(f"killed at the wall-clock limit ({result.duration_s:.1f} s)")


async def test_disk_fill_workspace(harness: Harness, record: Callable[[str], None]) -> None:
    code = """
import os
written = 0
try:
    for i in range(10_000):
        with open(f'fill{i}.bin', 'wb') as f:
            f.write(b'x' * (8 * 1024 * 1024))
        written += 8
except OSError as exc:
    print('STOPPED', written, exc.errno)
"""
    limits = SandboxLimits(disk_mb=64, file_size_mb=16, timeout_s=20)
    result = await harness.sandbox.run({}, ["python3", "-c", code], limits)
    if harness.name == "e2b" and "STOPPED" not in result.stdout:
        # The E2B cell's directory is not size-capped; here the executor's memory cgroup
        # (its /tmp is a tmpfs) kills the writer instead.
        assert result.exit_code == 137, result
        record("contained: writer killed at the executor's memory limit (SIGKILL)")
        return
    assert "STOPPED" in result.stdout, result
    written = int(result.stdout.split()[1])
    if harness.name != "e2b":
        assert written <= 64
        assert result.stdout.split()[2] == "28"  # ENOSPC
        record(f"contained: ENOSPC after {written} MiB (workspace tmpfs of 64 MiB)")
    else:
        record(f"contained: write failed after {written} MiB (errno {result.stdout.split()[2]})")


async def test_disk_fill_tmp(harness: Harness, record: Callable[[str], None]) -> None:
    code = """
import os
written = 0
try:
    with open('/tmp/fill.bin', 'wb') as f:
        while True:
            f.write(b'x' * (4 * 1024 * 1024))
            f.flush()
            written += 4
except (OSError, MemoryError) as exc:
    print('STOPPED', written, type(exc).__name__, getattr(exc, 'errno', ''))
"""
    limits = SandboxLimits(memory_mb=128, file_size_mb=1024, timeout_s=20)
    try:
        result = await harness.sandbox.run({}, ["python3", "-c", code], limits)
    except SandboxError as exc:
        assert harness.name == "e2b", exc
        assert "memory" in str(exc)
        record("contained: the whole cell was killed at the executor's memory limit")
        return
    assert "STOPPED" in result.stdout or not result.ok, result
    hits = ", ".join(result.limits_hit) or "none reported"
    if "STOPPED" in result.stdout:
        written, reason = result.stdout.split()[1:3]
        assert int(written) <= 1100
        record(f"contained: /tmp writes failed after {written} MiB ({reason})")
    else:
        record(f"contained: writer killed (exit {result.exit_code}, limits hit: {hits})")


async def test_open_files(harness: Harness, record: Callable[[str], None]) -> None:
    code = """
handles = []
try:
    while True:
        handles.append(open('/dev/null'))
except OSError as exc:
    print('STOPPED', len(handles), exc.errno)
"""
    result = await harness.sandbox.run(
        {}, ["python3", "-c", code], SandboxLimits(open_files=64, timeout_s=10)
    )
    assert "STOPPED" in result.stdout, result
    count = int(result.stdout.split()[1])
    assert count <= 64
    record(f"contained: EMFILE after {count} descriptors")


async def test_huge_output(harness: Harness, record: Callable[[str], None]) -> None:
    code = (
        "import sys\nfor _ in range(50):\n    sys.stdout.write('x' * 1_000_000)\n"
        "sys.stderr.write('e' * 3_000_000)\n"
    )
    result = await harness.sandbox.run(
        {}, ["python3", "-c", code], SandboxLimits(max_output_bytes=10_000, timeout_s=20)
    )
    assert result.output_truncated
    assert len(result.stdout) == 10_000
    assert len(result.stderr) == 10_000
    record("truncated to 10 kB per stream (50 MB written)")


# -- escapes through the file interface and the filesystem -------------------------------


async def test_write_outside_workspace(harness: Harness, record: Callable[[str], None]) -> None:
    name = f"strategos-escape-{uuid.uuid4().hex}"
    host_targets = [
        Path("/usr") / name,
        Path("/etc") / name,
        Path("/") / name,
        Path("/root") / name,
        Path(tempfile.gettempdir()) / name,
        REPO / name,
    ]
    body = "def write(p):\n    with open(p, 'w') as f:\n        f.write('x')\n"
    body += "".join(f"attempt({str(p)!r}, lambda: write({str(p)!r}))\n" for p in host_targets)
    result = await probe(harness, body)
    for target in host_targets:
        assert not target.exists(), target
    # /tmp inside the sandbox is its own tmpfs: a write there may succeed but never lands here.
    assert "ESCAPED /usr" not in result.stdout and "ESCAPED /etc" not in result.stdout
    assert "ESCAPED /root" not in result.stdout
    landed = [p for p in host_targets if p.exists()]
    record(
        f"no host file written ({len(landed)} of {len(host_targets)} targets); " + summary(result)
    )


async def test_dotdot_file_keys(harness: Harness, record: Callable[[str], None]) -> None:
    rejected = 0
    for key in ["../escape.txt", "a/../../escape.txt", "/etc/escape.txt", "a/./b", "x\x00y"]:
        with pytest.raises(InvalidWorkspacePath):
            await harness.sandbox.run({key: "x"}, ["true"])
        rejected += 1
    with pytest.raises(InvalidWorkspacePath):
        await harness.sandbox.run({}, ["true"], collect=["../../etc/shadow"])
    rejected += 1
    body = "attempt('../..', lambda: read('../../../../../../etc/shadow'))\n"
    result = await probe(harness, body)
    assert_contained(result)
    record(f"rejected before running: {rejected} keys; in-sandbox '..': " + summary(result))


async def test_symlink_escape_through_collect(
    harness: Harness, record: Callable[[str], None]
) -> None:
    code = f"""
import os
os.symlink('/etc/shadow', 'out.txt')
os.symlink({str(REPO / "pyproject.toml")!r}, 'proj.txt')
os.makedirs('d')
os.symlink('/etc', 'd/etc')
os.symlink('/proc/self/root/etc/shadow', 'self.txt')
print('planted')
"""
    result = await harness.sandbox.run(
        {},
        ["python3", "-c", code],
        FAST,
        collect=["out.txt", "proj.txt", "d/etc/shadow", "self.txt"],
    )
    assert result.ok, result.stderr
    assert result.files == {}
    record("links not followed: 0 of 4 planted symlinks read back")


async def test_fifo_in_collect(harness: Harness, record: Callable[[str], None]) -> None:
    code = "import os\nos.mkfifo('out.txt')\nos.mkfifo('log.txt')\n"
    start = time.monotonic()
    result = await harness.sandbox.run(
        {}, ["python3", "-c", code], FAST, collect=["out.txt", "log.txt"]
    )
    assert result.ok, result.stderr
    assert result.files == {}
    assert time.monotonic() - start < 15
    record("skipped without blocking: FIFOs are not regular files")


# -- processes ----------------------------------------------------------------------------


@pytest.fixture
def host_sleeper() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    proc.kill()
    proc.wait()


async def test_signal_host_processes(
    harness: Harness, record: Callable[[str], None], host_sleeper: subprocess.Popen[bytes]
) -> None:
    body = f"""
import signal
attempt('kill test runner {os.getpid()}', lambda: os.kill({os.getpid()}, signal.SIGKILL))
attempt('kill host sleeper {host_sleeper.pid}', lambda: os.kill({host_sleeper.pid}, signal.SIGKILL))
attempt('kill host init', lambda: os.kill(1, signal.SIGKILL) if os.getpid() != 1 else 1 / 0)
attempt('kill parent', lambda: os.kill(os.getppid(), signal.SIGKILL) if os.getppid() else 1 / 0)
"""
    result = await probe(harness, body)
    await asyncio.sleep(0.2)
    assert host_sleeper.poll() is None, "a host process was killed from inside the sandbox"
    # Any "success" hit a process inside the sandbox's own pid namespace, never a host one.
    record("host processes unaffected (separate pid namespace); " + summary(result))


async def test_background_daemon_survival(harness: Harness, record: Callable[[str], None]) -> None:
    marker = f"daemon-{uuid.uuid4().hex}"
    host_marker = Path(tempfile.gettempdir()) / marker
    child = (
        "import time, os\n"
        "time.sleep(1.5)\n"
        f"for d in ('/workspace', '/tmp', {tempfile.gettempdir()!r}):\n"
        "    try:\n"
        f"        open(os.path.join(d, {marker!r}), 'w').write('alive')\n"
        "    except OSError:\n"
        "        pass\n"
        "time.sleep(30)\n"
    )
    code = f"""
import os, sys, time
CHILD = {child!r}
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        for fd in (0, 1, 2):
            os.close(fd)
        os.execv(sys.executable, [sys.executable, '-c', CHILD, {marker!r}])
    os._exit(0)
print('spawned')
"""
    result = await harness.sandbox.run({}, ["python3", "-c", code], FAST)
    assert result.ok, result.stderr
    await asyncio.sleep(2.5)
    assert not host_marker.exists()
    assert _marked_processes(marker) == []
    if harness.name == "gvisor":
        leftovers = [p for p in _marked_processes(str(harness.state_root)) if p]
        assert leftovers == [], "a runsc process survived"
    record("killed with the run: no process and no marker file after 2.5 s")


async def test_escape_via_proc_self_root_and_cwd(
    harness: Harness, record: Callable[[str], None]
) -> None:
    body = """
attempt('/proc/1/root/etc/shadow', lambda: read('/proc/1/root/etc/shadow'))
attempt('/proc/1/cwd/../../etc/shadow', lambda: read('/proc/1/cwd/../../etc/shadow'))
def host_paths():
    return [line for line in open('/proc/self/mountinfo') if 'strategos-sandbox' in line][0]
attempt('host workspace path in mountinfo', host_paths)
"""
    result = await probe(harness, body)
    assert "root:" not in result.stdout
    assert_contained(result)
    record(summary(result))


async def test_keyring_and_bpf(harness: Harness, record: Callable[[str], None]) -> None:
    body = """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
SYS_bpf, SYS_perf_event_open, SYS_keyctl = 321, 298, 250
def syscall(nr, *args):
    if libc.syscall(nr, *args) < 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return 'ok'
attempt('bpf(PROG_LOAD)', lambda: syscall(SYS_bpf, 5, None, 0))
attempt('perf_event_open', lambda: syscall(SYS_perf_event_open, None, 0, -1, -1, 0))
attempt('keyctl(read session keyring)', lambda: syscall(SYS_keyctl, 11, -3, None, 0))
"""
    result = await probe(harness, body)
    assert "ESCAPED bpf" not in result.stdout
    assert "ESCAPED perf" not in result.stdout
    record(
        summary(result)
        + ("; keyring: own session only" if "ESCAPED keyctl" in result.stdout else "")
    )


if sys.platform != "linux":  # pragma: no cover
    pytestmark = pytest.mark.skip(reason="the sandboxes are Linux-only")
