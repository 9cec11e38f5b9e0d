"""Throwaway PostgreSQL and Redis servers that a test may stop, restart and break.

The machine's shared servers are never touched: each server here runs from a fresh directory on
a free loopback port and is stopped when its context ends. PostgreSQL refuses to run as root,
so under root the cluster belongs to the `postgres` account and its commands run through
`runuser`.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import redis

from tests.integration.aegra.harness import free_port

START_TIMEOUT_S = 60.0


def _wait(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll `check` until it holds; fail with `what` when it does not within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} after {timeout_s:.0f}s")


def _pg_bin(name: str) -> str:
    """A PostgreSQL server binary: on PATH, else in `pg_config --bindir`."""
    found = shutil.which(name)
    if found:
        return found
    bindir = subprocess.run(
        ["pg_config", "--bindir"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return str(Path(bindir) / name)


@dataclass
class PostgresServer:
    """A PostgreSQL cluster of our own: `url` is its `postgres` database."""

    datadir: Path
    port: int
    owner: str | None
    """The account the server runs as when we are root (PostgreSQL refuses root)."""

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        command = list(args)
        if self.owner is not None:
            command = ["runuser", "-u", self.owner, "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.datadir}"
        log = str(self.datadir / "server.log")
        self._run(_pg_bin("pg_ctl"), "-D", str(self.datadir), "-l", log, "-o", options, "start")
        _wait(self.accepts, START_TIMEOUT_S, "PostgreSQL did not accept connections")

    def stop(self) -> None:
        """Fast shutdown: every client connection is cut, as in a restart under load."""
        if (self.datadir / "postmaster.pid").exists():
            self._run(_pg_bin("pg_ctl"), "-D", str(self.datadir), "-m", "fast", "-w", "stop")

    def accepts(self) -> bool:
        try:
            with psycopg.connect(self.url, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.OperationalError:
            return False


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """A fresh cluster (trust auth on loopback) started on a free port; removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="strategos-faults-pg-"))
    owner = "postgres" if os.geteuid() == 0 else None
    datadir = root / "data"
    datadir.mkdir()
    if owner is not None:
        account = pwd.getpwnam(owner)
        for path in (root, datadir):
            os.chown(path, account.pw_uid, account.pw_gid)
    server = PostgresServer(datadir=datadir, port=free_port(), owner=owner)
    try:
        server._run(
            _pg_bin("initdb"), "-D", str(datadir), "-U", "postgres", "--auth=trust", "-E", "UTF8"
        )
        server.start()
        yield server
    finally:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            server.stop()
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class RedisServer:
    """A `redis-server` of our own that snapshots on shutdown, as a restart would."""

    workdir: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start (again) on the same port and directory; wait until it answers."""
        log = (self.workdir / "server.log").open("ab")
        command = [
            shutil.which("redis-server") or "redis-server",
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.workdir),
            "--save", "60 1",
            "--appendonly", "no",
        ]  # fmt: skip
        with log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        _wait(self.answers, START_TIMEOUT_S, "Redis did not answer")

    def stop(self) -> None:
        """SIGTERM: Redis writes its snapshot and closes every client connection."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def answers(self) -> bool:
        client = redis.Redis.from_url(self.url, socket_timeout=2)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()


@contextmanager
def redis_server() -> Iterator[RedisServer]:
    """A Redis on a free port in a fresh directory; stopped and removed afterwards."""
    workdir = Path(tempfile.mkdtemp(prefix="strategos-faults-redis-"))
    server = RedisServer(workdir=workdir, port=free_port())
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
