"""Aegra fixtures: a fresh PostgreSQL database, a Redis key prefix and two real instances.

The two instances share the database and the Redis queue, as a production deployment would, so
a thread created through one is visible and runnable through the other.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import write_script
from tests.integration.aegra import harness
from tests.integration.test_langgraph_server import approval_flow_rules


@dataclass(frozen=True)
class Deployment:
    """Two Aegra instances over one database and one Redis prefix."""

    a: harness.Instance
    b: harness.Instance
    database_url: str
    tmp: Path


@pytest.fixture(scope="session")
def aegra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """Start two instances with the approval-flow script; stop them and drop the database."""
    tmp = tmp_path_factory.mktemp("aegra")
    script = write_script(
        tmp / "script.json",
        approval_flow_rules(),
        latency_s=0.3,
    )
    prefix = f"strategos-test:{uuid.uuid4().hex[:8]}:"
    with harness.fresh_database() as database_url:
        env = harness.server_env(tmp, database_url, script, prefix)
        a = harness.start("a", tmp, env)
        b = None
        try:
            harness.wait_ready(a)  # migrates the database first, alone
            b = harness.start("b", tmp, env)
            harness.wait_ready(b)
            yield Deployment(a=a, b=b, database_url=database_url, tmp=tmp)
        finally:
            for instance in (a, b):
                if instance is not None:
                    instance.stop()
            harness.clean_redis(prefix)
