"""Checkpoint retention: old history is pruned, the latest state and the event log stay.

An instance runs with a retention of 6 s (`STRATEGOS_CHECKPOINT_RETENTION_MIN`), swept every
1.2 s. A finished task and a task waiting for approval both keep only their latest checkpoint
once their retention passed; the finished one still shows its report and its whole event log,
and the waiting one can still be approved and delivered from its one remaining checkpoint.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from tests.conftest import write_script
from tests.integration.aegra import harness
from tests.integration.test_langgraph_server import approval_flow_rules

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

RETENTION_MIN = 0.1
SWEEP_MIN = 0.02
PRUNE_TIMEOUT_S = 60.0


def checkpoint_rows(database_url: str, thread_id: str) -> dict[str, int]:
    """How many rows of each checkpoint table the thread holds (main namespace)."""
    counts: dict[str, int] = {}
    with psycopg.connect(database_url, autocommit=True) as conn:
        for table in ("checkpoints", "checkpoint_blobs", "checkpoint_writes"):
            row = conn.execute(
                f"SELECT count(*) FROM {table} WHERE thread_id = %s AND checkpoint_ns = ''",
                (thread_id,),
            ).fetchone()
            counts[table] = int(row[0]) if row else 0
    return counts


def event_count(database_url: str, thread_id: str) -> int:
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM strategos_events WHERE thread_id = %s", (thread_id,)
        ).fetchone()
    return int(row[0]) if row else 0


async def run_to_rest(client: LangGraphClient, thread_id: str, **kwargs: Any) -> str:
    """Start a run on the thread and wait until it is no longer pending or running."""
    run = await client.runs.create(thread_id, harness.GRAPH_ID, **kwargs)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = str((await client.runs.get(thread_id, run["run_id"]))["status"])
        if status not in ("pending", "running"):
            return status
        await asyncio.sleep(0.2)
    pytest.fail("run did not finish")


async def test_history_is_pruned_to_the_latest_checkpoint(tmp_path: Path) -> None:
    script = write_script(tmp_path / "script.json", approval_flow_rules())
    prefix = f"strategos-test:{uuid.uuid4().hex[:8]}:"
    with harness.fresh_database() as database_url:
        env = harness.server_env(tmp_path, database_url, script, prefix)
        env["STRATEGOS_CHECKPOINT_RETENTION_MIN"] = str(RETENTION_MIN)
        env["STRATEGOS_CHECKPOINT_SWEEP_MIN"] = str(SWEEP_MIN)
        try:
            with harness.serving("a", tmp_path, env) as instance:
                async with get_client(url=instance.url) as client:
                    data_dir = Path(env["STRATEGOS_DATA_DIR"])
                    await check_retention(client, database_url, data_dir)
        finally:
            harness.clean_redis(prefix)


async def check_retention(client: LangGraphClient, database_url: str, data_dir: Path) -> None:
    finished = (await client.threads.create())["thread_id"]
    waiting = (await client.threads.create())["thread_id"]
    goal = {"goal": harness.GOAL}
    # The harness's policy lets the first task deliver by itself; the second asks a human.
    done = await run_to_rest(client, finished, input=goal, context={"approve": "auto"})
    assert done == "success"
    await run_to_rest(client, waiting, input=goal, context={"approve": "ask"})
    assert (await client.threads.get(waiting))["status"] == "interrupted"

    before = {tid: checkpoint_rows(database_url, tid) for tid in (finished, waiting)}
    assert all(rows["checkpoints"] > 5 for rows in before.values()), before
    events_before = event_count(database_url, finished)
    assert events_before > 0

    deadline = time.monotonic() + PRUNE_TIMEOUT_S
    while any(checkpoint_rows(database_url, tid)["checkpoints"] > 1 for tid in before):
        if time.monotonic() > deadline:
            pytest.fail(f"history not pruned: {before}")
        await asyncio.sleep(0.5)
    after = {tid: checkpoint_rows(database_url, tid) for tid in before}
    for tid, rows in after.items():
        assert rows["checkpoint_blobs"] < before[tid]["checkpoint_blobs"], (before, after)

    # The finished task keeps its outcome and its whole event log.
    values = (await client.threads.get_state(finished))["values"]
    assert isinstance(values, dict) and values["report"]["status"] == "delivered"
    assert len(await client.threads.get_history(finished, limit=10)) == 1
    assert event_count(database_url, finished) == events_before

    # The waiting task resumes from its one remaining checkpoint and delivers.
    status = await run_to_rest(
        client,
        waiting,
        command={"resume": {"approved": True, "comment": ""}},
        context={"approve": "ask"},
    )
    assert status == "success"
    values = (await client.threads.get_state(waiting))["values"]
    assert isinstance(values, dict) and values["report"]["status"] == "delivered"
    assert harness.delivered_file(data_dir, waiting).is_file()
