"""The benchmark's results file: rows, totals, the table, and resuming an interrupted run.

`strategos bench --out FILE` writes FILE after every task, so a run that stops (a kill, a
reboot) continues where it stopped: the rows already in the file are kept and not run again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NotRequired, TypedDict, cast

from rich.table import Table


class BenchRow(TypedDict):
    """One task in one mode: whether the hidden tests passed, and what it cost."""

    task_id: str
    mode: str
    passed: bool
    model_calls: int
    prompt_tokens: int
    completion_tokens: int
    iterations: int
    wall_s: float
    stop_reason: str
    error: str


class ModeTotals(TypedDict):
    """One mode's pass@1 and mean cost per task."""

    mode: str
    tasks: int
    passed: int
    pass_at_1: float
    model_calls_per_task: float
    prompt_tokens_per_task: float
    completion_tokens_per_task: float
    wall_s_per_task: float
    iterations_per_task: float


class BenchResults(TypedDict):
    """The results file: what was run (dataset, slice, model, prompt ids), totals and rows."""

    dataset: str
    offset: int
    limit: int | None
    model: str
    sampling: NotRequired[dict[str, object]]
    """The execution-first team's settings the run used (older files lack it)."""
    prompts: dict[str, str]
    totals: list[ModeTotals]
    tasks: list[BenchRow]


def summarize(rows: list[BenchRow], mode: str) -> ModeTotals:
    """Totals for one mode: pass@1 and mean cost per task."""
    mine = [r for r in rows if r["mode"] == mode]
    n = len(mine) or 1
    return {
        "mode": mode,
        "tasks": len(mine),
        "passed": sum(r["passed"] for r in mine),
        "pass_at_1": round(sum(r["passed"] for r in mine) / n, 4),
        "model_calls_per_task": round(sum(r["model_calls"] for r in mine) / n, 2),
        "prompt_tokens_per_task": round(sum(r["prompt_tokens"] for r in mine) / n, 1),
        "completion_tokens_per_task": round(sum(r["completion_tokens"] for r in mine) / n, 1),
        "wall_s_per_task": round(sum(r["wall_s"] for r in mine) / n, 2),
        "iterations_per_task": round(sum(r["iterations"] for r in mine) / n, 2),
    }


def totals_table(dataset: str, tasks: int, results: BenchResults) -> Table:
    """The totals as the console shows them at the end of a run."""
    table = Table(title=f"{dataset}: {tasks} tasks")
    for column in ("mode", "pass@1", "calls/task", "tokens/task", "s/task", "iterations"):
        table.add_column(column)
    for total in results["totals"]:
        table.add_row(
            total["mode"],
            f"{total['passed']}/{total['tasks']} ({total['pass_at_1']:.1%})",
            str(total["model_calls_per_task"]),
            f"{total['prompt_tokens_per_task']:.0f}+{total['completion_tokens_per_task']:.0f}",
            str(total["wall_s_per_task"]),
            str(total["iterations_per_task"]),
        )
    return table


def previous_rows(out: Path | None, dataset: str) -> list[BenchRow]:
    """The rows an earlier, interrupted run of the same dataset saved in `out`."""
    if out is None or not out.exists():
        return []
    try:
        data = json.loads(out.read_text())
    except (OSError, ValueError):
        return []
    rows = data.get("tasks", []) if data.get("dataset") == dataset else []
    # Our own file, written by `_write` from `BenchRow`s: trusted to keep their shape.
    return [cast(BenchRow, row) for row in rows if isinstance(row, dict) and "task_id" in row]


def write(out: Path, results: BenchResults) -> None:
    """Replace `out` atomically: a kill mid-write leaves the previous file whole."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=2))
    tmp.replace(out)
