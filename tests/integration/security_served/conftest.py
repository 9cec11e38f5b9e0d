"""Servers under attack: `langgraph dev` and two Aegra instances, with tenants' and agent keys.

Both serve the repo's graph and the task façade (`tests.integration.api.conftest`) with the
scripted model. The operator's approval policy is the default one — a human with an approving
key answers every delivery — except for carol, whose deliveries the operator lets through
(`STRATEGOS_AUTO_APPROVE`). Alice also has an agent key: it may submit and watch her tasks,
never answer an approval. Episodic memory is on under `langgraph dev` (one process owns the
embedded Qdrant Edge shard); the two Aegra instances share a data dir, so theirs is off.

Every attack that names a host path points into a sentinel folder outside the servers' data
dir; `Served.assert_contained` checks that it stayed empty and that nothing appeared next to
the data dir either.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from tests.integration.api.conftest import KEYS, ApiServer, run_api_server
from tests.integration.test_langgraph_server import approval_flow_rules
from tools.ledger import EventKind, LedgerEvent, open_ledger

AGENT_KEY = "alice-agent-0009"
"""Alice's automation: submits and watches her tasks, cannot approve them."""
AUTO_APPROVED = ("carol:deliver_files",)
"""The operator's policy: only carol's deliveries may go out without a human."""
EPISODIC = "strategos_episodic"
BACKENDS = ("langgraph-dev", "aegra")


@dataclass(frozen=True)
class Served:
    """A server under attack, the keys to call it with and the places it must not write."""

    api: ApiServer
    root: Path
    """The folder the server runs in: its data dir, logs, script and config."""
    sentinel: Path
    """A host folder outside the data dir that attacks aim at; it must stay empty."""
    baseline: frozenset[str]

    @property
    def url(self) -> str:
        return self.api.url

    @property
    def backend(self) -> str:
        return self.api.backend

    @property
    def data_dir(self) -> Path:
        return self.api.data_dir

    def key(self, who: str) -> str:
        """The API key of a tenant, or of alice's agent (`agent`)."""
        return AGENT_KEY if who == "agent" else KEYS[who]

    def headers(self, who: str) -> dict[str, str]:
        return {"x-api-key": self.key(who)}

    @asynccontextmanager
    async def client(self, who: str) -> AsyncIterator[LangGraphClient]:
        """The official SDK, authenticated as `who`."""
        async with get_client(url=self.url, api_key=self.key(who)) as sdk:
            yield sdk

    def delivered(self, thread_id: str) -> Path:
        """A task's own delivery folder, the only place a served run may deliver to."""
        return self.data_dir / "tasks" / thread_id / "delivered"

    async def events(
        self, thread_id: str, kinds: list[EventKind] | None = None
    ) -> list[LedgerEvent]:
        """The thread's ledgered events (of these kinds): the gateway's and the façade's."""
        ledger = await open_ledger(self.api.database_url or str(self.data_dir / "ledger.sqlite"))
        try:
            return await ledger.events(thread_id, 0, 10_000, kinds=kinds)
        finally:
            await ledger.close()

    def tail(self) -> str:
        return self.api.tail()

    def assert_contained(self) -> None:
        """Nothing in the sentinel, nothing new next to the data dir, deliveries in place."""
        planted = sorted(str(p) for p in self.sentinel.rglob("*"))
        assert not planted, f"written outside the data dir: {planted}"
        assert _outside_data_dir(self.root) == self.baseline, "a file appeared next to the data dir"
        tasks = self.data_dir / "tasks"
        strays = [
            str(path)
            for path in (tasks.rglob("*") if tasks.exists() else [])
            if path.is_file() and path.relative_to(tasks).parts[1:2] != ("delivered",)
        ]
        assert not strays, f"files in task folders outside their delivery folder: {strays}"


def _outside_data_dir(root: Path) -> frozenset[str]:
    """Files under the server's folder, but not its data dir, logs or langgraph dev's store."""
    skipped = {"data", ".langgraph_api"}
    return frozenset(
        str(path.relative_to(root))
        for path in root.rglob("*")
        if path.is_file()
        and path.relative_to(root).parts[0] not in skipped
        and path.suffix != ".log"
    )


@contextmanager
def serve(backend: str, tmp: Path) -> Iterator[Served]:
    """Start `backend` in `tmp` with the keys, the policy and a sentinel host folder."""
    extra = {
        "STRATEGOS_AGENT_API_KEYS": f"alice:{AGENT_KEY}",
        "STRATEGOS_AUTO_APPROVE": json.dumps(list(AUTO_APPROVED)),
        "STRATEGOS_MEMORY_ENABLED": "true" if backend == "langgraph-dev" else "false",
    }
    root = tmp / "server"
    root.mkdir()
    sentinel = tmp / "host"
    sentinel.mkdir()
    with run_api_server(root, approval_flow_rules(), backend, extra_env=extra) as api:
        yield Served(api, root, sentinel, _outside_data_dir(root))


@pytest.fixture(scope="package")
def dev_served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """`langgraph dev`, shared by the attacks and the fuzz test."""
    with serve("langgraph-dev", tmp_path_factory.mktemp("served_dev")) as served:
        yield served


@pytest.fixture(scope="package")
def aegra_served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """Two Aegra instances over one fresh database; requests go to the first."""
    with serve("aegra", tmp_path_factory.mktemp("served_aegra")) as served:
        yield served


def memory_points(served: Served) -> list[dict[str, Any]]:
    """The payloads of every episodic memory the server stored (a copy of its Edge shard).

    The server's process holds the shard's WAL lock, so the test reads a copy; `remember` has
    flushed the memories to the shard's files when it returns (and the WAL copy holds the rest).
    """
    import qdrant_edge as qe

    source = served.data_dir / "episodic" / EPISODIC
    if not source.exists():
        return []
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / EPISODIC
        shutil.copytree(source, copy)
        shard = qe.EdgeShard.load(str(copy))
        try:
            payloads: list[dict[str, Any]] = []
            offset: Any = None
            while True:
                records, offset = shard.scroll(
                    qe.ScrollRequest(offset=offset, limit=256, with_payload=True)
                )
                payloads += [dict(record.payload or {}) for record in records]
                if offset is None:
                    return payloads
        finally:
            shard.close()
