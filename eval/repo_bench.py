"""The repository-task benchmark: agents over the task set, scored by hidden tests in the sandbox.

An agent is any `(goal, files) -> AgentResult` coroutine: the baseline's one request
(`eval.repo_baseline`), a ReAct or plan-and-solve team, a scripted stand-in. Each gets every
task's goal and repository, and its final files are scored by `eval.repo_tasks.score`. The
results file keeps one row per agent and task (written after every task, so an interrupted run
continues where it stopped) and the totals per agent: tasks solved, model calls, tokens, wall
time and how many runs a loop guard stopped; `markdown_table` renders those totals.

    python -m eval.repo_bench --agent plain --out bench/results/repo-tasks-plain.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict, cast

from eval.repo_tasks import RepoTask, load_repo_tasks, score, workspace_files
from tools.sandbox import Sandbox

__all__ = [
    "AgentResult",
    "AgentTotals",
    "RepoAgent",
    "RepoBenchResults",
    "RepoBenchRow",
    "markdown_table",
    "run_repo_bench",
]

DATASET = "repo_tasks"
NOTE_CHARS = 600


@dataclass(frozen=True)
class AgentResult:
    """What an agent ends a task with: its files, what it cost, and why it stopped."""

    files: dict[str, str]
    model_calls: int = 0
    tokens: int = 0
    stop_reason: str = ""
    loop_stopped: bool = False
    """True when a loop guard (circuit breaker) ended the run rather than the agent itself."""
    note: str = ""
    """Anything the agent wants kept in its row (the baseline: the start of its answer)."""


type RepoAgent = Callable[[str, dict[str, str]], Awaitable[AgentResult]]


class RepoBenchRow(TypedDict):
    """One agent on one task."""

    agent: str
    task_id: str
    kind: str
    difficulty: int
    solved: bool
    visible_passed: int
    visible_failed: int
    hidden_passed: int
    hidden_failed: int
    model_calls: int
    tokens: int
    wall_s: float
    stop_reason: str
    loop_stopped: bool
    changed_files: list[str]
    failures: list[str]
    error: str
    note: str


class AgentTotals(TypedDict):
    """One agent over the set: solved per kind, and totals of what it cost."""

    agent: str
    tasks: int
    solved: int
    solved_by_kind: dict[str, str]
    model_calls: int
    tokens: int
    wall_s: float
    loop_stops: int


class RepoBenchResults(TypedDict):
    """The results file: the set, the model, totals per agent and every row."""

    dataset: str
    model: str
    totals: list[AgentTotals]
    tasks: list[RepoBenchRow]


async def _row(name: str, agent: RepoAgent, task: RepoTask, sandbox: Sandbox) -> RepoBenchRow:
    """Run `agent` on `task` and score its files; an agent that raises scores its given files."""
    given = workspace_files(task)
    started = time.monotonic()
    try:
        result = await agent(task.goal, dict(given))
        error = ""
    except Exception as exc:  # one agent's crash is a row, not the end of the run
        result, error = (
            AgentResult(files=given, stop_reason="error"),
            f"{type(exc).__name__}: {exc}",
        )
    wall = round(time.monotonic() - started, 2)
    verdict = await score(task, result.files, sandbox)
    changed = sorted(p for p, text in result.files.items() if given.get(p) != text)
    changed += sorted(f"-{p}" for p in given if p not in result.files)
    return {
        "agent": name,
        "task_id": task.id,
        "kind": task.kind,
        "difficulty": task.difficulty,
        "solved": verdict.solved,
        "visible_passed": verdict.visible_passed,
        "visible_failed": verdict.visible_failed,
        "hidden_passed": verdict.hidden_passed,
        "hidden_failed": verdict.hidden_failed,
        "model_calls": result.model_calls,
        "tokens": result.tokens,
        "wall_s": wall,
        "stop_reason": result.stop_reason,
        "loop_stopped": result.loop_stopped,
        "changed_files": changed,
        "failures": verdict.failures[:5],
        "error": (error or verdict.error)[:500],
        "note": result.note[:NOTE_CHARS],
    }


def totals(rows: Sequence[RepoBenchRow], agent: str) -> AgentTotals:
    """One agent's totals over its rows."""
    mine = [row for row in rows if row["agent"] == agent]
    kinds = sorted({row["kind"] for row in mine})
    return {
        "agent": agent,
        "tasks": len(mine),
        "solved": sum(row["solved"] for row in mine),
        "solved_by_kind": {
            kind: f"{sum(r['solved'] for r in mine if r['kind'] == kind)}/"
            f"{sum(r['kind'] == kind for r in mine)}"
            for kind in kinds
        },
        "model_calls": sum(row["model_calls"] for row in mine),
        "tokens": sum(row["tokens"] for row in mine),
        "wall_s": round(sum(row["wall_s"] for row in mine), 1),
        "loop_stops": sum(row["loop_stopped"] for row in mine),
    }


def markdown_table(results: RepoBenchResults) -> str:
    """The totals as a markdown table: one row per agent."""
    lines = [
        "| agent | solved | fix | feature | refactor | model calls | tokens | wall (s) "
        "| loop stops |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for total in results["totals"]:
        kinds = total["solved_by_kind"]
        lines.append(
            f"| {total['agent']} | {total['solved']}/{total['tasks']} | {kinds.get('fix', '-')} "
            f"| {kinds.get('feature', '-')} | {kinds.get('refactor', '-')} "
            f"| {total['model_calls']} | {total['tokens']} | {total['wall_s']} "
            f"| {total['loop_stops']} |"
        )
    return "\n".join(lines)


def _previous_rows(out: Path | None) -> list[RepoBenchRow]:
    if out is None or not out.exists():
        return []
    try:
        data = json.loads(out.read_text())
    except (OSError, ValueError):
        return []
    rows = data.get("tasks", []) if data.get("dataset") == DATASET else []
    return [cast(RepoBenchRow, row) for row in rows if isinstance(row, dict) and "agent" in row]


def _results(model: str, agents: Sequence[str], rows: list[RepoBenchRow]) -> RepoBenchResults:
    return {
        "dataset": DATASET,
        "model": model,
        "totals": [totals(rows, name) for name in agents],
        "tasks": rows,
    }


def _write(out: Path, results: RepoBenchResults) -> None:
    """Replace `out` atomically: a kill mid-write leaves the previous file whole."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    tmp.replace(out)


async def run_repo_bench(
    agents: Mapping[str, RepoAgent],
    sandbox: Sandbox,
    *,
    tasks: Sequence[RepoTask] | None = None,
    model: str = "",
    out: Path | None = None,
    progress: Callable[[RepoBenchRow], None] | None = None,
) -> RepoBenchResults:
    """Every agent on every task; rows already in `out` (an interrupted run) are not run again."""
    chosen = list(tasks) if tasks is not None else load_repo_tasks()
    wanted = {task.id for task in chosen}
    rows = [r for r in _previous_rows(out) if r["agent"] in agents and r["task_id"] in wanted]
    done = {(row["agent"], row["task_id"]) for row in rows}
    for task in chosen:
        for name, agent in agents.items():
            if (name, task.id) in done:
                continue
            row = await _row(name, agent, task, sandbox)
            rows.append(row)
            if out is not None:
                _write(out, _results(model, list(agents), rows))
            if progress is not None:
                progress(row)
    return _results(model, list(agents), rows)


def _agents(names: Sequence[str]) -> tuple[dict[str, RepoAgent], str]:
    """The agents asked for by name, on the service's configured model."""
    from eval.repo_baseline import plain_agent
    from eval.repo_tasks import reference_files
    from service.llm.models import chat_model
    from service.settings import get_settings

    settings = get_settings()
    by_id = {task.id: task for task in load_repo_tasks()}

    async def reference(goal: str, files: dict[str, str]) -> AgentResult:
        task = next(t for t in by_id.values() if t.goal == goal)
        return AgentResult(files=reference_files(task), stop_reason="reference")

    chosen: dict[str, RepoAgent] = {}
    for name in names:
        if name == "plain":
            chosen[name] = plain_agent(chat_model(settings))
        elif name == "reference":
            chosen[name] = reference
        else:
            raise SystemExit(f"unknown agent {name!r}; use plain or reference")
    return chosen, settings.model


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark from a terminal; prints a line per task and the totals table."""
    from tools.sandbox import LocalSandbox

    parser = argparse.ArgumentParser(prog="python -m eval.repo_bench")
    parser.add_argument("--agent", action="append", default=[], help="plain or reference")
    parser.add_argument(
        "--task", action="append", default=[], help="task id, run in the order given (default: all)"
    )
    parser.add_argument("--out", type=Path, default=None, help="results JSON to write")
    args = parser.parse_args(argv)
    tasks = load_repo_tasks()
    unknown = set(args.task) - {task.id for task in tasks}
    if unknown:
        raise SystemExit(f"unknown task id(s): {', '.join(sorted(unknown))}")
    by_id = {task.id: task for task in tasks}
    chosen = [by_id[task_id] for task_id in args.task] if args.task else tasks
    agents, model = _agents(args.agent or ["plain"])

    def show(row: RepoBenchRow) -> None:
        mark = "solved" if row["solved"] else "unsolved"
        print(
            f"{row['agent']:<10} {row['task_id']:<28} {mark:<8} calls={row['model_calls']} "
            f"tokens={row['tokens']} {row['wall_s']:.1f}s {row['error'][:80]}",
            flush=True,
        )

    run = run_repo_bench(
        agents, LocalSandbox(), tasks=chosen, model=model, out=args.out, progress=show
    )
    results = asyncio.run(run)
    print(markdown_table(results))


if __name__ == "__main__":
    main()
