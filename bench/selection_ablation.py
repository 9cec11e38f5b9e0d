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

from eval.bench import goal_of
from eval.datasets import load_dataset
from eval.pools import load, pools_path
from eval.replay import RULES, first_batch, rerun, score
from tools.checks import encode, extract_spec_checks
from tools.sandbox import LocalSandbox


async def ablate(results_file: Path) -> dict[str, object]:
    results = json.loads(results_file.read_text())
    pools = load(pools_path(results_file))
    tasks = {task.task_id: task for task in load_dataset(results["dataset"])}
    sandbox = LocalSandbox()
    wins: dict[str, list[str]] = {rule.name: [] for rule in RULES}
    replayed: list[str] = []
    for task_id, entry in sorted(pools.items(), key=lambda kv: int(kv[0].split("/")[-1])):
        if not first_batch(entry):
            continue
        result = await rerun(entry, sandbox)
        task = tasks[task_id]
        reread = [encode(c) for c in extract_spec_checks(goal_of(task), task.entry_point)]
        again = await rerun(entry, sandbox, reread)
        replayed.append(task_id)
        for rule in RULES:
            if score(entry, again if rule.reread else result, rule):
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


def differences(ablation: dict[str, object]) -> str:
    """The tasks where the rules (and modes as run) disagree, and who solved each."""
    tasks = ablation["tasks"]
    groups = {**ablation["as_run"], **ablation["rules"]}  # type: ignore[dict-item]
    assert isinstance(tasks, list)
    lines = []
    for task in tasks:
        solved = [name for name, passed in groups.items() if task in passed]
        if 0 < len(solved) < len(groups):
            lines.append(f"- {task}: solved by {', '.join(solved)}")
    return "\n".join(lines) or "- none: every rule and mode solved the same tasks"


def main() -> None:
    results_file = Path(sys.argv[1])
    ablation = asyncio.run(ablate(results_file))
    out = results_file.with_name(results_file.stem + ".ablation.json")
    out.write_text(json.dumps(ablation, indent=2))
    print(table(ablation))
    print()
    print(differences(ablation))


if __name__ == "__main__":
    main()
