"""The gateway benchmark runs end to end against the real PostgreSQL (tiny sizes).

Timings are not asserted (the machine is shared); the test guards what the committed results
rely on: every case is present and well formed, the counts per call are the gateway's, a replay
returns the recorded result without running the tool, and the run leaves no schema behind.
"""

from __future__ import annotations

import json
from pathlib import Path

import psycopg

from bench.gateway.bench_gateway import CASES, main
from tests.conftest import PG_URL

CALLS = 20
TIMING_KEYS = ("p50_ms", "p95_ms", "p99_ms", "mean_ms", "min_ms", "max_ms")


def bench_schemas() -> set[str]:
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        rows = conn.execute(
            r"SELECT nspname FROM pg_namespace WHERE nspname LIKE 'bench\_gateway\_%'"
        ).fetchall()
    return {str(row[0]) for row in rows}


def test_bench_gateway_small_run(tmp_path: Path) -> None:
    before = bench_schemas()
    out = tmp_path / "results.json"

    assert main(["--calls", str(CALLS), "--pg-url", PG_URL, "--out", str(out)]) == 0

    data = json.loads(out.read_text())
    assert data["calls"] == CALLS
    machine = data["machine"]
    assert machine["cpus"] >= 1
    assert machine["python"].startswith("3.12")
    assert machine["postgres_server"] and machine["postgres_server"] != "unknown"
    rows = {row["id"]: row for row in data["results"]}
    assert list(rows) == [case.id for case in CASES]
    for row in rows.values():
        assert row["calls"] == CALLS
        for key in TIMING_KEYS:
            assert isinstance(row[key], float | int), (row["id"], key)
        assert row["min_ms"] <= row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"] <= row["max_ms"]
        overheads = (row["overhead_p50_ms"], row["overhead_mean_ms"])
        if row["sql"] is None:  # a gateway row (or the baseline): overhead is reported
            assert all(isinstance(v, float | int) for v in overheads), row["id"]
        else:  # a bare-SQL reference row: no gateway, no overhead
            assert overheads == (None, None), row["id"]
    assert rows["baseline"]["overhead_p50_ms"] == 0

    for case in ("baseline", "read_only", "read_only_pg", "ledgered_memory"):
        assert rows[case]["handler_runs"] == CALLS, case
    for case in ("ledgered_sqlite", "ledgered_pg", "ledgered_pg_nosync"):
        row = rows[case]
        assert row["handler_runs"] == CALLS
        assert row["ledger_ops_per_call"] == 4  # claim, scheduled event, complete, done event
        # ... written as two transactions: the claim with its event, the result with its event
        assert row["ledger_transactions_per_call"] == 2
        assert row["events_by_kind_per_call"] == {
            "ActivityCompleted": 1.0,
            "ActivityScheduled": 1.0,
        }
    assert rows["read_only_pg"]["ledger_ops_per_call"] == 2  # the two events, no ledger entry

    replay = rows["replay_pg"]
    assert replay["handler_runs"] == 0  # the recorded result came back; the tool did not run
    assert replay["events_per_call"] == 0
    # the refused claim, the read of the record, and the check that its outcome is in the log
    assert replay["ledger_ops_per_call"] == 3

    assert bench_schemas() <= before  # the run dropped the schema it created
