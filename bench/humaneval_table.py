"""Render a `strategos bench` results file as the Markdown table used in docs/benchmarks.md."""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path


def table(results: dict) -> str:
    lines = [
        "| mode | pass@1 | model calls / task | prompt + completion tokens / task "
        "| wall s / task | iterations / task |",
        "|---|---|---|---|---|---|",
    ]
    for total in results["totals"]:
        lines.append(
            f"| {total['mode']} | {total['passed']}/{total['tasks']} "
            f"({total['pass_at_1']:.0%}) | {total['model_calls_per_task']} "
            f"| {total['prompt_tokens_per_task']:.0f} + {total['completion_tokens_per_task']:.0f} "
            f"| {total['wall_s_per_task']} | {total['iterations_per_task']} |"
        )
    return "\n".join(lines)


def medians(results: dict) -> str:
    """Median model calls and wall seconds per task, per mode (the totals give means)."""
    lines = ["| mode | model calls / task (median) | wall s / task (median) |", "|---|---|---|"]
    for total in results["totals"]:
        rows = [r for r in results["tasks"] if r["mode"] == total["mode"]]
        if rows:
            calls = statistics.median(r["model_calls"] for r in rows)
            wall = statistics.median(r["wall_s"] for r in rows)
            lines.append(f"| {total['mode']} | {calls:g} | {wall:.1f} |")
    return "\n".join(lines)


def per_task(results: dict) -> str:
    modes = [t["mode"] for t in results["totals"]]
    lines = ["| task | " + " | ".join(modes) + " |", "|---|" + "---|" * len(modes)]
    rows: dict[str, dict[str, dict]] = {}
    for row in results["tasks"]:
        rows.setdefault(row["task_id"], {})[row["mode"]] = row
    for task_id, by_mode in rows.items():
        cells = []
        for mode in modes:
            row = by_mode.get(mode)
            if row is None:
                cells.append("-")
                continue
            mark = "pass" if row["passed"] else "fail"
            cells.append(f"{mark}, {row['model_calls']} calls, {row['wall_s']:.0f} s")
        lines.append(f"| {task_id} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    data = json.loads(Path(sys.argv[1]).read_text())
    print(table(data))
    print()
    print(medians(data))
    print()
    print(per_task(data))
