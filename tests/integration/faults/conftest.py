"""Fault-injection fixtures: our own PostgreSQL and Redis, and two Aegra instances on them.

The servers are started per module and belong to the tests, which stop, restart and break them;
the machine's shared PostgreSQL and Redis are never touched. Every fixture leaves its servers
running again before tearing down, so a test that failed mid-outage still cleans up.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.aegra import harness
from tests.integration.api.conftest import ApiServer, run_api_server
from tests.integration.faults.services import (
    PostgresServer,
    RedisServer,
    postgres_server,
    redis_server,
)

TENANT = "ops"
KEY = "ops-key-0000001"
LATENCY_S = 1.0
"""Each scripted model call takes this long, so a restart lands while the tasks run."""


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    """A PostgreSQL cluster of this module's own (restarted by the tests)."""
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="module")
def redis_srv() -> Iterator[RedisServer]:
    """A Redis of this module's own (stopped and restarted by the tests)."""
    with redis_server() as server:
        yield server


def fault_env() -> dict[str, str]:
    """One tenant with room for the whole test, allowed to deliver without a human."""
    limits = {"rate_limit_per_s": 1000, "rate_limit_burst": 1000, "max_active_tasks": 100}
    return {
        "STRATEGOS_API_KEYS": f"{TENANT}:{KEY}",
        "STRATEGOS_TENANT_LIMITS": json.dumps({TENANT: limits}),
        "STRATEGOS_AUTO_APPROVE": json.dumps([TENANT]),
    }


@pytest.fixture
def deployment(pg: PostgresServer, redis_srv: RedisServer, tmp_path: Path) -> Iterator[ApiServer]:
    """Two `strategos serve` instances over a fresh database on `pg` and a prefix on `redis_srv`."""
    with run_api_server(
        tmp_path,
        harness.crash_rules(),
        "aegra",
        latency_s=LATENCY_S,
        pg_url=pg.url,
        redis_url=redis_srv.url,
        extra_env=fault_env(),
    ) as server:
        try:
            yield server
        finally:  # the teardown drops the database and the keys: both must be up again
            if not pg.accepts():
                pg.start()
            if not redis_srv.answers():
                redis_srv.start()
