"""The orchestration benchmark runs end to end in its quick mode and writes a sound result.

It runs the script as documented (`python -m bench.orchestration.bench_steps --quick`): the
selection team on the scripted model and the raw graph of its shape, on SQLite, in every
durability mode. Nothing is timed here (the machine is shared); what is checked is that both
graphs' figures are there, for the same shape and state size, with the sandbox accounted apart.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow

GRAPHS = {"team", "raw"}
DURABILITIES = {"sync", "async", "exit"}
FIGURES = ("step_p50_ms", "step_p95_ms", "task_p50_ms", "task_p95_ms", "task_mean_ms")


def test_a_quick_run_writes_both_graphs_figures_for_every_durability(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench.orchestration.bench_steps", "--quick", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    document = json.loads(out.read_text())

    rows = document["results"]
    assert {(r["graph"], r["durability"]) for r in rows} == {
        (g, d) for g in GRAPHS for d in DURABILITIES
    }
    for row in rows:
        assert row["store"] == "sqlite" and row["tasks"] == 3
        assert row["supersteps"] == 5  # prepare, the samples, judge, conclude, deliver
        assert len(row["superstep_p50_ms"]) == 5
        assert all(row[key] > 0 for key in FIGURES), row
        assert row["step_p50_ms"] <= row["step_p95_ms"]
        assert row["task_p50_ms"] <= row["task_p95_ms"]
        assert row["checkpoint_bytes_per_step"] > 0
        if row["graph"] == "team":  # the judge's run and the delivery go through the ledger
            assert row["ledger_statements_per_task"] > 0 and row["ledger_ms_per_task_p50"] > 0
        else:
            assert row["ledger_statements_per_task"] == 0
    by_case = {(r["graph"], r["durability"]): r for r in rows}
    for graph in GRAPHS:  # `exit` writes once at the end, the others after every superstep
        exit_mode, sync = by_case[(graph, "exit")], by_case[(graph, "sync")]
        assert exit_mode["checkpoints_per_task"] < sync["checkpoints_per_task"]

    ratios = document["ratios"]
    assert {r["durability"] for r in ratios} == DURABILITIES
    assert all(r[key] > 0 for r in ratios for key in ("task_p50_ms", "step_p50_ms"))

    sizes = document["state_bytes_after_each_step"]
    assert len(sizes["team"]) == len(sizes["raw"]) == 6  # the input, then each superstep
    assert abs(sizes["team"][-1] - sizes["raw"][-1]) <= 0.1 * sizes["team"][-1]

    sandbox = document["sandbox"]
    assert sandbox["in_table"].startswith("excluded")
    assert sandbox["replays"] >= 9 and sandbox["real_runs"] == 1  # every timed team task
    assert "| sqlite | exit | team |" in run.stdout
