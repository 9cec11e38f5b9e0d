"""Crash recovery: SIGKILL one of two Aegra instances while it runs tasks.

Every task must still be delivered, each resumed from its last checkpoint (one `input`
checkpoint per thread and exactly the scripted number of model calls), and each delivery must
have happened once (one completed `deliver_files` call in the shared ledger, and the delivered
file not rewritten after the ledger recorded it; a delivery cut off mid-call is finished by the
recovering instance, which leaves files already written alone). Recovery must take at most 10 s.
`bench/aegra/bench_recovery.py` runs the same scenario with repeated kills.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.aegra import harness

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

TASKS = 50
RECOVERY_BUDGET_S = 10.0


def recoveries(instance: harness.Instance) -> float:
    """Runs the instance's lease reaper re-queued (Aegra's counter, on its /metrics)."""
    page = httpx.get(f"{instance.url}/metrics", timeout=30.0)
    assert page.status_code == 200, page.text[:300]
    return sum(
        sample.value
        for family in text_string_to_metric_families(page.text)
        for sample in family.samples
        if sample.name == "aegra_reaper_recovered_runs_total"
        and sample.labels.get("outcome") in {"crashed_retried", "stuck_pending"}
    )


def test_sigkill_one_instance_every_task_finishes_once(tmp_path: Path) -> None:
    script = harness.crash_script(tmp_path / "script.json", latency_s=1.0)
    prefix = f"strategos-test:{uuid.uuid4().hex[:8]}:"
    with harness.fresh_database() as database_url:
        env = harness.server_env(tmp_path, database_url, script, prefix)
        env["STRATEGOS_METRICS"] = "true"
        survivor = harness.start("survivor", tmp_path, env)
        victim = None
        try:
            harness.wait_ready(survivor)
            victim = harness.start("victim", tmp_path, env)
            harness.wait_ready(victim)
            data_dir = Path(env["STRATEGOS_DATA_DIR"])
            result = harness.crash_once(survivor, victim, database_url, data_dir, TASKS)
            recovered = recoveries(survivor)
        finally:
            for instance in (survivor, victim):
                if instance is not None:
                    instance.stop()
            harness.clean_redis(prefix)

    print(f"\nrecovery after SIGKILL: {result.recovery_s:.2f}s for {result.orphaned} orphaned runs")
    assert result.orphaned >= 1
    assert set(result.run_status.values()) == {"success"}, result.run_status
    for thread_id in result.reports:
        assert result.input_checkpoints[thread_id] == 1, "a recovered run restarted from input"
        assert result.deliveries.get(thread_id, 0) <= 1, "deliver_files completed twice"
    assert not result.rewritten_after_delivery
    assert result.recovery_s <= RECOVERY_BUDGET_S
    # The survivor's /metrics counts the runs its reaper took over from the dead instance.
    assert recovered >= 1, recovered

    off_script = {
        tid: report
        for tid, report in result.reports.items()
        if report.get("status") != "delivered"
        or report.get("model_calls") != harness.SCRIPTED_CALLS
    }
    assert not off_script, off_script
    assert set(result.deliveries) == set(result.reports)
    assert all(n == 1 for n in result.deliveries.values())
