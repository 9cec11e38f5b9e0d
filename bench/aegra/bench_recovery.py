"""Recovery time after SIGKILL of one of two Aegra instances, p50 over repeated kills.

Each round submits TASKS scripted tasks (three model calls of LATENCY_S each, then a real
`deliver_files` through the gateway and its PostgreSQL ledger), SIGKILLs the instance that is
running some of them, and waits until every task is finished. Recovery time is kill → the last
orphaned run claimed by the surviving instance. Every round also checks the invariants of the
crash test: all delivered, model calls as scripted, one input checkpoint and one delivery per
thread. A new instance replaces the killed one before the next round.

    .venv/bin/python -m bench.aegra.bench_recovery [--kills 10] [--tasks 50]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

from service.settings import Settings
from tests.integration.aegra import harness

LATENCY_S = 1.0


def check(result: harness.CrashResult) -> list[str]:
    problems = []
    for tid, report in result.reports.items():
        if report.get("status") != "delivered":
            problems.append(f"{tid}: not delivered ({report.get('status')})")
        elif report.get("model_calls") != harness.SCRIPTED_CALLS:
            problems.append(f"{tid}: {report.get('model_calls')} model calls")
        if result.input_checkpoints.get(tid) != 1:
            problems.append(f"{tid}: {result.input_checkpoints.get(tid)} input checkpoints")
        if result.deliveries.get(tid) != 1:
            problems.append(f"{tid}: {result.deliveries.get(tid)} deliveries")
    problems += [f"{tid}: rewritten after delivery" for tid in result.rewritten_after_delivery]
    return problems


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("results.json"))
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="strategos-bench-aegra-"))
    script = harness.crash_script(tmp / "script.json", latency_s=LATENCY_S)
    prefix = f"strategos-bench:{uuid.uuid4().hex[:8]}:"
    rounds: list[dict[str, Any]] = []
    results: list[harness.CrashResult] = []
    with harness.fresh_database() as database_url:
        env = harness.server_env(tmp, database_url, script, prefix)
        live = harness.start("i0", tmp, env)
        harness.wait_ready(live)
        try:
            for k in range(args.kills):
                fresh = harness.start(f"i{k + 1}", tmp, env)
                harness.wait_ready(fresh)
                # Alternate: kill the fresh instance, then the long-lived one.
                survivor, victim = (live, fresh) if k % 2 == 0 else (fresh, live)
                live = survivor
                data_dir = Path(env["STRATEGOS_DATA_DIR"])  # deliveries: one folder per task
                result = harness.crash_once(survivor, victim, database_url, data_dir, args.tasks)
                problems = check(result)
                results.append(result)
                row = asdict(result)
                for key in ("reports", "run_status", "input_checkpoints", "deliveries"):
                    row.pop(key)
                row["problems"] = problems
                rounds.append(row)
                print(
                    f"kill {k + 1}/{args.kills}: {result.orphaned} orphaned runs, recovery "
                    f"{result.recovery_s:.2f}s, all {args.tasks} done in {result.total_s:.1f}s, "
                    f"problems: {len(problems)}",
                    flush=True,
                )
        finally:
            live.stop()
            harness.clean_redis(prefix)

    serve = Settings()
    data: dict[str, Any] = {
        "benchmark": "aegra recovery after SIGKILL",
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "settings": {
            "lease_s": serve.aegra_lease_s,
            "heartbeat_s": serve.aegra_heartbeat_s,
            "reaper_s": serve.aegra_reaper_s,
            "model_latency_s": LATENCY_S,
            "tasks_per_kill": args.tasks,
        },
        "summary": harness.summary(results) | {"problems": sum(len(r["problems"]) for r in rounds)},
        "rounds": rounds,
    }
    harness.dump(args.out, data)
    print(f"p50 recovery {data['summary']['recovery_s_p50']:.2f}s → {args.out}")


if __name__ == "__main__":
    main()
