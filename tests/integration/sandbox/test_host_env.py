"""The host-side processes of a sandbox run (cgroup join shell, setpriv, bwrap, runsc) get an
allow-listed environment: the service's secrets never reach them, cold, pooled or under gVisor.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.integration.sandbox.leftovers import processes_with
from tools.child_env import INHERITED
from tools.sandbox import LocalSandbox, SandboxLimits, SandboxResult, SandboxUnavailable
from tools.sandbox.cgroups import RunCgroup

FAKE_SECRETS = {
    "OPENAI_API_KEY": "sk-fake-openai-0123456789",
    "STRATEGOS_API_KEY": "fake-strategos-key-0123456789",
    "AWS_SECRET_ACCESS_KEY": "fake-aws-secret-0123456789",
}


@pytest.fixture
def secrets_set(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in FAKE_SECRETS.items():
        monkeypatch.setenv(name, value)


def _environ_of(pid: int) -> bytes:
    """The environment block process `pid` was started (or last exec'd) with."""
    return Path(f"/proc/{pid}/environ").read_bytes()


def _assert_clean(environ: bytes) -> None:
    names = {entry.split(b"=", 1)[0].decode() for entry in environ.split(b"\0") if entry}
    assert not names & set(FAKE_SECRETS), names
    assert not any(value.encode() in environ for value in FAKE_SECRETS.values())
    # A shell in the chain may add its own variables (PWD…); none of ours beyond the allow-list.
    assert names - {"PWD", "OLDPWD", "SHLVL", "_"} <= set(INHERITED), names


class _Watching(LocalSandbox):
    """Notes the environment of every run's host process as its supervision starts."""

    seen: list[bytes]

    async def _supervise(
        self, proc: asyncio.subprocess.Process, group: RunCgroup | None, limits: SandboxLimits
    ) -> SandboxResult:
        self.seen.append(_environ_of(proc.pid))
        return await super()._supervise(proc, group, limits)


@pytest.mark.usefixtures("secrets_set")
@pytest.mark.parametrize("pool_size", [0, 1])
async def test_local_host_processes_get_no_secrets(pool_size: int) -> None:
    sandbox = _Watching(pool_size=pool_size)
    sandbox.seen = []
    try:
        await sandbox.start_pool()
        result = await sandbox.run({}, ["sh", "-c", "sleep 0.3; env"])
    finally:
        await sandbox.aclose()
    assert result.ok, result.stderr
    assert not any(value in result.stdout for value in FAKE_SECRETS.values())
    assert len(sandbox.seen) >= 2  # the probe and the run
    for environ in sandbox.seen:
        _assert_clean(environ)


@pytest.mark.usefixtures("secrets_set")
async def test_runsc_gets_no_secrets() -> None:
    from tools.sandbox.gvisor import GVisorSandbox

    try:
        sandbox = GVisorSandbox()
    except SandboxUnavailable as exc:
        pytest.skip(f"runsc cannot run here: {exc}")
    try:
        task: asyncio.Future[Any] = asyncio.ensure_future(sandbox.run({}, ["sleep", "2"]))
        environs: list[bytes] = []
        while not task.done() and not environs:
            await asyncio.sleep(0.05)
            for pid in processes_with(f"--root={sandbox.state_root}".encode()):
                try:
                    environs.append(_environ_of(pid))
                except OSError:
                    continue
        result = await task
    finally:
        await sandbox.aclose()
    assert result.ok, result.stderr
    assert environs, "no runsc process was seen while the container ran"
    for environ in environs:
        _assert_clean(environ)
