"""The sandbox's /tmp is a capped tmpfs: a snippet gets ENOSPC at the file and byte caps.

Before, /tmp had no inode cap: a snippet created 300,000 files there, bounded only by the memory
cgroup. Both backends bind a directory of the run's scratch tmpfs at /tmp (`SandboxLimits.tmp_mb`
and `tmp_files`); the local backend binds another at /dev/shm, under the same caps.
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.sandbox.leftovers import Leftovers
from tools.sandbox import LocalSandbox, Sandbox, SandboxLimits, SandboxUnavailable
from tools.sandbox.markers import current_owner

MIB = 1024 * 1024

# Create up to `limit` empty files in a directory; print how many, and the error that stopped it.
FILL_FILES = """
import errno, os, sys
folder, prefix, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
n = 0
try:
    while n < limit:
        open(os.path.join(folder, f'{prefix}{n}'), 'w').close()
        n += 1
    print(n, 'no-error')
except OSError as exc:
    print(n, errno.errorcode[exc.errno])
"""

# Write 1 MiB chunks to one file in /tmp until something stops it.
FILL_BYTES = """
import errno
written = 0
try:
    with open('/tmp/big.bin', 'wb') as f:
        while written < 1024 * 1024 * 1024:
            f.write(b'x' * (1024 * 1024))
            f.flush()
            written += 1024 * 1024
    print(written, 'no-error')
except OSError as exc:
    print(written, errno.errorcode[exc.errno])
"""


@pytest.fixture(scope="module", params=["local", "gvisor"])
def sandbox(request: pytest.FixtureRequest) -> Iterator[tuple[str, Sandbox]]:
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


def run_resources() -> set[Path]:
    """This process's per-run mounts and directories (workspace and scratch tmpfs)."""
    mine = Leftovers.of(current_owner())
    return {p for p in (*mine.mounts, *mine.directories) if mine.kinds((p,)) & {"ws", "tmp"}}


async def fill(sandbox: Sandbox, folder: str, limit: int, limits: SandboxLimits) -> list[str]:
    prefix = f"cap-{uuid.uuid4().hex[:8]}-"
    result = await sandbox.run(
        {"fill.py": FILL_FILES}, ["python3", "fill.py", folder, prefix, str(limit)], limits
    )
    assert result.ok, result.stderr
    assert not result.timed_out and "memory" not in result.limits_hit
    return result.stdout.split()


async def test_300000_files_in_tmp_stop_at_the_default_cap(
    sandbox: tuple[str, Sandbox],
) -> None:
    before = run_resources()
    limits = SandboxLimits(timeout_s=120, cpu_s=120)
    created, error = await fill(sandbox[1], "/tmp", 300_000, limits)
    assert (int(created), error) == (SandboxLimits().tmp_files, "ENOSPC")
    # The files lived in the run's own tmpfs, which is gone with the run.
    assert run_resources() == before
    assert not list(Path(tempfile.gettempdir()).glob("cap-*-0"))


async def test_the_file_cap_is_the_configured_one(sandbox: tuple[str, Sandbox]) -> None:
    created, error = await fill(sandbox[1], "/tmp", 10_000, SandboxLimits(tmp_files=100))
    assert (int(created), error) == (100, "ENOSPC")
    # The next run starts with an empty /tmp and the whole cap again.
    again = await sandbox[1].run({}, ["python3", "-c", "import os; print(os.listdir('/tmp'))"])
    assert again.stdout == "[]\n"


async def test_tmp_bytes_stop_at_tmp_mb(sandbox: tuple[str, Sandbox]) -> None:
    limits = SandboxLimits(tmp_mb=8, file_size_mb=64, memory_mb=256)
    result = await sandbox[1].run({"fill.py": FILL_BYTES}, ["python3", "fill.py"], limits)
    assert result.ok, result.stderr
    written, error = result.stdout.split()
    assert error == "ENOSPC"
    assert 7 * MIB <= int(written) <= 8 * MIB


async def test_dev_shm_shares_the_tmp_cap() -> None:
    code = FILL_FILES + (
        "try:\n"
        "    open('/dev/shm/one-more', 'w').close()\n"
        "    print('shm-ok')\n"
        "except OSError as exc:\n"
        "    print('shm', errno.errorcode[exc.errno])\n"
    )
    result = await LocalSandbox().run(
        {"fill.py": code}, ["python3", "fill.py", "/tmp", "f", "1000"], SandboxLimits(tmp_files=50)
    )
    assert result.stdout.split() == ["50", "ENOSPC", "shm", "ENOSPC"]


async def test_concurrent_runs_each_get_their_own_cap(sandbox: tuple[str, Sandbox]) -> None:
    limits = SandboxLimits(tmp_files=40)
    results = await asyncio.gather(*(fill(sandbox[1], "/tmp", 1000, limits) for _ in range(2)))
    assert results == [["40", "ENOSPC"], ["40", "ENOSPC"]]
