"""Ablations of the execution-first team on the candidates a `strategos bench` run recorded.

    python -m bench.selection_ablation bench/results/humaneval-every4.json

reads the results file and its `.pools.jsonl`, re-runs each task's first batch once in the
sandbox (no model call) and scores every rule of `eval.replay.RULES` on it; it prints a Markdown
table and writes `<results>.ablation.json`. Rows for the team as it ran and for the baselines
come from the results file itself, so everything in the table is one run's candidates.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from eval.pools import load, pools_path
from eval.replay import RULES, first_batch, rerun, score
from tools.sandbox import LocalSandbox


async def ablate(results_file: Path) -> dict[str, object]:
    results = json.loads(results_file.read_text())
    pools = load(pools_path(results_file))
    sandbox = LocalSandbox()
    wins: dict[str, list[str]] = {rule.name: [] for rule in RULES}
    replayed: list[str] = []
    for task_id, entry in sorted(pools.items(), key=lambda kv: int(kv[0].split("/")[-1])):
        if not first_batch(entry):
            continue
        result = await rerun(entry, sandbox)
        replayed.append(task_id)
        for rule in RULES:
            if score(entry, result, rule):
                wins[rule.name].append(task_id)
    as_run = {
        total["mode"]: [
            row["task_id"]
            for row in results["tasks"]
            if row["mode"] == total["mode"] and row["passed"] and row["task_id"] in replayed
        ]
        for total in results["totals"]
    }
    return {"tasks": replayed, "rules": wins, "as_run": as_run}


def table(ablation: dict[str, object]) -> str:
    tasks = ablation["tasks"]
    assert isinstance(tasks, list)
    lines = ["| how the winner is chosen | pass@1 |", "|---|---|"]
    for label, group in (("as run", ablation["as_run"]), ("replayed", ablation["rules"])):
        assert isinstance(group, dict)
        for name, passed in group.items():
            lines.append(f"| {name} ({label}) | {len(passed)}/{len(tasks)} |")
    return "\n".join(lines)


def main() -> None:
    results_file = Path(sys.argv[1])
    ablation = asyncio.run(ablate(results_file))
    out = results_file.with_name(results_file.stem + ".ablation.json")
    out.write_text(json.dumps(ablation, indent=2))
    print(table(ablation))


if __name__ == "__main__":
    main()
