"""Batched lease heartbeats (`service.serving.aegra_leases`) on a real Aegra instance.

A run longer than its 5 s lease keeps it (renewed every 2 s by the instance's one renewal loop)
and finishes without being re-run; a run whose lease is taken by another worker is cancelled
here, as Aegra's own per-run heartbeat would do, and then finished once by the reaper's retry.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from langgraph_sdk import get_client

from tests.integration.aegra import harness

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

LATENCY_S = 2.5
"""Three scripted calls of 2.5 s: a run of about 8 s against a 5 s lease."""


def lease_of(database_url: str, run_id: str) -> tuple[str, str | None, datetime | None]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT status, claimed_by, lease_expires_at FROM runs WHERE run_id = %s", (run_id,)
        ).fetchone()
    assert row is not None
    return str(row[0]), row[1], row[2]


async def start_run(url: str) -> tuple[str, str]:
    async with get_client(url=url) as client:
        thread_id = (await client.threads.create())["thread_id"]
        run = await client.runs.create(
            thread_id,
            harness.GRAPH_ID,
            input={"goal": harness.GOAL},
            context={"approve": "auto"},  # the harness's policy allows it
        )
    return thread_id, run["run_id"]


def wait_for(database_url: str, run_id: str, statuses: set[str], timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = lease_of(database_url, run_id)[0]
        if status in statuses:
            return status
        time.sleep(0.1)
    pytest.fail(f"run {run_id} never reached {statuses}")


def deliveries(database_url: str, thread_id: str) -> int:
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM strategos_events WHERE thread_id = %s "
            "AND kind = 'ActivityCompleted' AND data->>'tool' = 'deliver_files'",
            (thread_id,),
        ).fetchone()
    return int(row[0]) if row else 0


async def report_of(url: str, thread_id: str) -> dict[str, Any]:
    async with get_client(url=url) as client:
        values = (await client.threads.get_state(thread_id))["values"]
    assert isinstance(values, dict)
    report: dict[str, Any] = values.get("report") or {}
    return report


def test_long_run_keeps_its_lease_and_a_stolen_one_is_cancelled(tmp_path: Path) -> None:
    script = harness.crash_script(tmp_path / "script.json", latency_s=LATENCY_S)
    prefix = f"strategos-test:{uuid.uuid4().hex[:8]}:"
    with harness.fresh_database() as database_url:
        env = harness.server_env(tmp_path, database_url, script, prefix)
        try:
            with harness.serving("a", tmp_path, env) as instance:
                check_renewal(instance, database_url)
                check_theft(instance, database_url)
        finally:
            harness.clean_redis(prefix)


def check_renewal(instance: harness.Instance, database_url: str) -> None:
    thread_id, run_id = asyncio.run(start_run(instance.url))
    wait_for(database_url, run_id, {"running"}, 30)
    _, worker, first = lease_of(database_url, run_id)
    expiries = []
    while (state := lease_of(database_url, run_id))[0] == "running":
        assert state[1] == worker, "the run changed hands: its lease lapsed"
        if state[2] is not None:
            assert state[2] > datetime.now(UTC), "the lease expired while the run was healthy"
            expiries.append(state[2])
        time.sleep(0.25)
    assert state[0] == "success"
    assert first is not None and max(expiries) > first, "the lease was never renewed"
    assert len(set(expiries)) >= 3, expiries
    assert asyncio.run(report_of(instance.url, thread_id))["model_calls"] == 3
    assert deliveries(database_url, thread_id) == 1


def check_theft(instance: harness.Instance, database_url: str) -> None:
    thread_id, run_id = asyncio.run(start_run(instance.url))
    wait_for(database_url, run_id, {"running"}, 30)
    time.sleep(LATENCY_S / 2)  # inside the first model call
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE runs SET claimed_by = 'another-worker' WHERE run_id = %s", (run_id,))
    deadline = time.monotonic() + 10
    while f"lease of run {run_id} lost" not in instance.log.read_text(errors="replace"):
        assert time.monotonic() < deadline, "the stolen lease went unnoticed"
        time.sleep(0.1)
    # The thief never renews: the reaper frees the run and it is finished, once.
    assert wait_for(database_url, run_id, {"success", "error"}, 60) == "success"
    report = asyncio.run(report_of(instance.url, thread_id))
    assert report["status"] == "delivered"
    assert deliveries(database_url, thread_id) == 1
