"""The task façade served two ways, with the tenants' keys, limits and Redis gauges.

Every test here runs against both servers the façade is mounted in (`langgraph.json` →
`http.app`): `langgraph dev`, and two real Aegra instances (`strategos serve`) sharing a fresh
PostgreSQL database and a Redis prefix, the way a deployment runs. The `langgraph dev` helpers
(free port, readiness wait, process-group stop) come from `test_langgraph_server`, the Aegra ones
from `tests.integration.aegra.harness`; the environment is the same: seeded API keys, per-tenant
limit overrides, a Redis key prefix of the server's own, and the scripted model.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import cli_env, write_script
from tests.integration.aegra import harness
from tests.integration.test_langgraph_server import (
    REPO,
    _free_port,
    _log_tail,
    _stop,
    _wait_until_ready,
    approval_flow_rules,
)

KEYS = {
    "alice": "alice-key-0001",
    "bob": "bob-key-0002",
    "carol": "carol-key-0003",  # active-task cap of 1
    "dave": "dave-key-0004",  # 3 requests burst, 0.2/s
    "fuzz": "fuzz-key-0005",  # the schemathesis tenant
}
TENANT_LIMITS = {
    "carol": {"max_active_tasks": 1},
    "dave": {"rate_limit_per_s": 0.2, "rate_limit_burst": 3},
    "fuzz": {"rate_limit_per_s": 1000, "rate_limit_burst": 1000, "max_active_tasks": 1},
}
REDIS_URL = "redis://127.0.0.1:6379/0"
MODEL_429_THRESHOLD = 5
BACKENDS = ("langgraph-dev", "aegra")


@dataclass(frozen=True)
class ApiServer:
    """A running server, its log and the Redis prefix its limits use."""

    url: str
    log: Path
    data_dir: Path
    redis_prefix: str
    backend: str = "langgraph-dev"
    peer_url: str | None = None
    """A second instance over the same database and Redis (Aegra only)."""
    peer_log: Path | None = None
    instances: tuple[harness.Instance, ...] = ()
    """The Aegra processes, first one first (for tests that kill one)."""
    database_url: str | None = None

    def headers(self, tenant: str) -> dict[str, str]:
        return {"x-api-key": KEYS[tenant]}

    def tail(self) -> str:
        if self.peer_log is None:
            return _log_tail(self.log)
        return f"{_log_tail(self.log)}\n--- peer ---\n{_log_tail(self.peer_log)}"


def _limits_env(script: Path, prefix: str, redis_url: str = REDIS_URL) -> dict[str, str]:
    """What both servers get: the script, the keys, the limits and the Redis gauges."""
    return {
        "STRATEGOS_SCRIPTED_MODEL": str(script),
        "STRATEGOS_API_KEYS": ",".join(f"{t}:{k}" for t, k in KEYS.items()),
        "STRATEGOS_TENANT_LIMITS": json.dumps(TENANT_LIMITS),
        "STRATEGOS_REDIS_URL": redis_url,
        "STRATEGOS_REDIS_PREFIX": prefix,
        "STRATEGOS_BACKPRESSURE_MAX_MODEL_429_PER_MIN": str(MODEL_429_THRESHOLD),
        "STRATEGOS_BACKPRESSURE_MAX_QUEUE": "50",
        "STRATEGOS_MEMORY_ENABLED": "false",
        "STRATEGOS_MEMORY_GRAPH_ENABLED": "false",
        "STRATEGOS_METRICS": "true",
        # The operator's policy: alice's tasks may deliver without a human (`approve: auto`);
        # everyone else's wait for one.
        "STRATEGOS_AUTO_APPROVE": json.dumps(["alice"]),
    }


def _config_in(tmp: Path) -> Path:
    """The repo's langgraph.json with absolute paths, so the server can run in `tmp`."""
    config = json.loads((REPO / "langgraph.json").read_text())
    config["dependencies"] = [str(REPO)]
    config["graphs"] = {
        name: str(REPO / spec) if spec.startswith("./") else spec
        for name, spec in config["graphs"].items()
    }
    path = tmp / "langgraph.json"
    path.write_text(json.dumps(config))
    return path


@contextmanager
def run_api_server(
    tmp: Path,
    rules: list[dict[str, Any]],
    backend: str = "langgraph-dev",
    *,
    latency_s: float = 0.0,
    pg_url: str = harness.PG_URL,
    redis_url: str = REDIS_URL,
    extra_env: Mapping[str, str] | None = None,
) -> Iterator[ApiServer]:
    """Serve the façade in `tmp` on `backend` with the tenants' keys and this script.

    Aegra's database is created on the server of `pg_url`, and its queue and the limits use
    `redis_url` (the machine's by default; fault tests bring servers they may restart).
    `extra_env` is added last (a test's own keys, policy or memory settings).
    """
    if backend == "aegra":
        with _run_on_aegra(tmp, rules, latency_s, pg_url, redis_url, extra_env or {}) as server:
            yield server
        return
    script = write_script(tmp / "script.json", rules, latency_s=latency_s)
    prefix = f"strategos-test-{uuid.uuid4().hex[:8]}"
    env = cli_env(
        tmp,
        **_limits_env(script, prefix),
        LANGGRAPH_CLI_NO_ANALYTICS="1",
        LANGGRAPH_NO_VERSION_CHECK="true",
    )
    env.update(extra_env or {})
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp / "server.log"
    command = [
        str(Path(sys.executable).parent / "langgraph"),
        "dev",
        "--config",
        str(_config_in(tmp)),
        "--no-browser",
        "--no-reload",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command,
            cwd=tmp,  # langgraph dev keeps its threads in ./.langgraph_api: start afresh
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_until_ready(proc, url, log)
        yield ApiServer(
            url=url, log=log, data_dir=Path(env["STRATEGOS_DATA_DIR"]), redis_prefix=prefix
        )
    finally:
        _stop(proc)


@contextmanager
def _run_on_aegra(
    tmp: Path,
    rules: list[dict[str, Any]],
    latency_s: float,
    pg_url: str,
    redis_url: str,
    extra_env: Mapping[str, str],
) -> Iterator[ApiServer]:
    """Two `strategos serve` instances over a fresh database; requests go to the first."""
    script = write_script(tmp / "script.json", rules, latency_s=latency_s)
    prefix = f"strategos-test-{uuid.uuid4().hex[:8]}"
    with harness.fresh_database(pg_url) as database_url:
        env = harness.server_env(tmp, database_url, script, prefix, redis_url)
        env.update(_limits_env(script, prefix, redis_url))
        env.update(extra_env)
        first = harness.start("a", tmp, env)
        second = None
        try:
            harness.wait_ready(first)  # migrates the database alone
            second = harness.start("b", tmp, env)
            harness.wait_ready(second)
            yield ApiServer(
                url=first.url,
                log=first.log,
                data_dir=Path(env["STRATEGOS_DATA_DIR"]),
                redis_prefix=prefix,
                backend="aegra",
                peer_url=second.url,
                peer_log=second.log,
                instances=(first, second),
                database_url=database_url,
            )
        finally:
            for instance in (first, second):
                if instance is not None:
                    instance.stop()
            harness.clean_redis(prefix, redis_url)


@pytest.fixture(scope="package", params=BACKENDS)
def api_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiServer]:
    backend = str(request.param)
    tmp = tmp_path_factory.mktemp(f"api_{backend}")
    with run_api_server(tmp, approval_flow_rules(), backend) as server:
        yield server


@pytest.fixture
async def http(api_server: ApiServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api_server.url, timeout=60.0) as client:
        yield client
