"""`bench/model/bench_model.py --quick` runs on the real model and writes every part.

The benchmark is the floor later team figures are read against, so a change that breaks it
(a renamed server field, a flag this llama-server build no longer has) must show here, not
on the day someone needs the numbers. Only the shape and the signs are checked: a loaded
machine makes any timed assertion flaky.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, cli_env

pytestmark = [pytest.mark.model, pytest.mark.slow, pytest.mark.timeout(900)]


def positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def test_quick_benchmark_writes_every_part_with_positive_figures(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.model.bench_model", "--quick", "--out", str(out)],
        cwd=REPO,
        env=cli_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=850,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    data = json.loads(out.read_text())
    assert data["quick"] is True
    assert "### Prefix reuse" in proc.stdout  # the Markdown tables for the README

    machine = data["machine"]
    assert positive(machine["nproc"]) and positive(machine["cpu_count"])
    assert len(machine["load_average_before"]) == len(machine["load_average_after"]) == 3
    reports = data["server"]["server_reports"]
    assert reports["total_slots"] == 4 and positive(reports["n_ctx_per_slot"])
    assert "--parallel" in data["server"]["argv"]

    single = data["single_sequence"]
    assert positive(single["prompt_tokens_per_s"]) and positive(single["generation_tokens_per_s"])
    sizes = single["ttft_by_prompt_size"]
    assert len(sizes) >= 2
    for size in sizes:
        assert positive(size["ttft_s_median"]) and positive(size["prompt_tokens_per_s"])
        # Prompt caching off: every prompt token was evaluated.
        assert all(
            r["prompt_n"] == r["sent_tokens"] == size["prompt_tokens"] for r in size["requests"]
        )

    levels = data["concurrency"]["levels"]
    assert [level["sequences"] for level in levels] == [1, 2, 4]
    for level in levels:
        assert positive(level["aggregate_tokens_per_s"])
        assert positive(level["per_sequence_tokens_per_s"])
        assert len(level["rounds"][0]["requests"]) == level["sequences"]

    prefix = data["prefix_reuse"]
    consecutive = prefix["consecutive"]
    assert positive(consecutive["cold"]["wall_s"]) and positive(consecutive["warm"]["wall_s_mean"])
    # The shared prefix is evaluated once; the next requests evaluate (about) their tails.
    assert consecutive["warm"]["evaluated_tokens"] < consecutive["warm"]["sent_tokens"]
    cold_round, warm_round = prefix["concurrent"]["rounds"]
    assert positive(cold_round["wall_s"]) and positive(warm_round["wall_s"])
    assert warm_round["evaluated_tokens"] < warm_round["sent_tokens"]

    spec = data["speculative"]
    types = [row["spec_type"] for row in spec["types"]]
    assert types[0] == "none" and len(types) >= 2
    assert spec["fastest"] in types
    for row in spec["types"]:
        assert positive(row["wall_s"]) and positive(row["generated_tokens"])
        assert positive(row["generation_tokens_per_s"])
        assert row["spec_type"] in spec["servers"]
    servers = spec["servers"]
    assert servers["none"]["server_reports"]["speculative_slots"] == 0
    # The speculative type reached the server (its slots report a speculative context).
    assert all(servers[t]["server_reports"]["speculative_slots"] == 4 for t in types[1:])
