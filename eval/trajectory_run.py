"""Running the trajectory cases: each task on a fresh graph, ledger and sandbox, then scored.

    strategos eval [--model scripted|real] [--out FILE]

A case (`eval/datasets/trajectories.json`) is a goal, the team and settings it runs with, the
human's answers if it asks, a script for the scripted model and the reference trajectory. With
the scripted model each case replays its script, so the table is exact and a change of the
team's path fails `tests/integration/test_trajectory_eval.py`. With the real model the same
goals run on the bundled model (scripts ignored): the table says how often the real team takes
the reference path, at what cost.

What the reviewer raised (a critique, the referee's question) is judged by the LLM judge
(`eval.llm_judge`) on the same model; a scripted case is judged only when its script answers the
judge's role. The judge's score counts in a row's `passed` only when its measured agreement with
human labels allows it (`eval.judge_agreement.judge_status`); otherwise it is advisory.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command
from rich.console import Console
from rich.table import Table

from eval.datasets.records import load_records
from eval.judge_agreement import JudgeStatus, judge_status, load_agreement, row_passed
from eval.llm_judge import PROMPT_NAME, RemarkJudge
from eval.trajectory import (
    Reference,
    Scores,
    Trajectory,
    as_row,
    reviewer_remarks,
    score,
    tool_calls_of,
)
from graphs.context import TeamContext
from graphs.state import TeamInput
from service.llm.models import chat_model
from service.llm.scripted import ScriptedChatModel
from service.settings import Settings
from service.team_deps import compile_named
from tools.builtin import default_registry
from tools.gateway import ToolGateway
from tools.ledger import LedgerEvent, open_ledger
from tools.sandbox import LocalSandbox

DATASET = Path(__file__).parent / "datasets" / "trajectories.json"


@dataclass(frozen=True)
class Case:
    """One task with its reference trajectory."""

    id: str
    goal: str
    reference: Reference
    team: Literal["pipeline", "selection"] = "selection"
    settings: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)
    answers: list[dict[str, Any]] = field(default_factory=list)
    script: list[dict[str, Any]] = field(default_factory=list)
    why: str = ""
    """What the case shows, for the table."""


def load_cases(path: Path = DATASET) -> list[Case]:
    """The committed cases (ValueError naming the case when one is malformed)."""
    return load_records(path, Case, "trajectory case")


async def _trajectory(graph: Any, config: dict[str, Any]) -> tuple[Any, Any]:
    """The graph's steps turn by turn (agentevals), and the final state's values."""
    from agentevals.graph_trajectory.utils import aextract_langgraph_trajectory_from_thread

    extracted = await aextract_langgraph_trajectory_from_thread(graph, config)
    values = (await graph.aget_state(config)).values
    return extracted["outputs"], values


async def run_case(
    case: Case, settings: Settings, model: BaseChatModel | None
) -> tuple[Trajectory, list[LedgerEvent]]:
    """Run `case` (on its script when `model` is None) and read back what it did."""
    chosen = settings.model_copy(update=case.settings)
    graph = compile_named(case.team, InMemorySaver(), chosen)
    thread = f"eval-{case.id}"
    config: dict[str, Any] = {"configurable": {"thread_id": thread}, "recursion_limit": 200}
    with tempfile.TemporaryDirectory(prefix="strategos-eval-") as tmp:
        ledger = await open_ledger(str(Path(tmp) / "ledger.sqlite"))
        try:
            ctx = TeamContext(
                model=model or ScriptedChatModel.model_validate({"script": {"rules": case.script}}),
                out_dir=str(Path(tmp) / "out"),
                use_memory=False,
                gateway=ToolGateway(default_registry(), ledger, sandbox=LocalSandbox()),
                **{"tenant": "eval", "approve": "auto", **case.context},
            )
            started = time.monotonic()
            task: TeamInput = {"goal": case.goal}
            result = await graph.ainvoke(task, cast(RunnableConfig, config), context=ctx)
            for answer in case.answers:
                if "__interrupt__" not in result:
                    break
                resume: Command[Any] = Command(resume=answer)
                result = await graph.ainvoke(resume, cast(RunnableConfig, config), context=ctx)
            wall = time.monotonic() - started
            steps, values = await _trajectory(graph, config)
            events = await ledger.events(thread, 0, 10_000)
        finally:
            await ledger.close()
    trajectory = Trajectory(
        graph=steps,
        calls=tool_calls_of(events),
        events=[event.kind for event in events],
        report=values.get("report") or {},
        usage=values.get("usage") or {},
        wall_s=round(wall, 2),
        code=(values.get("files") or {}).get("solution.py", ""),
        remarks=reviewer_remarks(values),
    )
    return trajectory, events


def summary(results: list[tuple[Case, Trajectory, Scores]]) -> dict[str, Any]:
    """The results file: one row per case and the rates over all of them."""
    rows = [as_row(case.id, scores) for case, _, scores in results]
    n = max(len(rows), 1)

    def rate(key: str) -> float:
        return round(sum(bool(row[key]) for row in rows) / n, 3)

    totals = {
        "cases": len(rows),
        "graph_strict": rate("graph_strict"),
        "tools_strict": round(sum(row["tools"]["strict"] for row in rows) / n, 3),
        "success": rate("success"),
        "step_efficiency": round(sum(row["step_efficiency"] for row in rows) / n, 3),
        "tool_validity": rate("tool_validity"),
        "safety": rate("safety"),
        "model_calls": round(sum(row["model_calls"] for row in rows) / n, 2),
        "tokens": round(sum(row["tokens"] for row in rows) / n, 1),
        "wall_s": round(sum(row["wall_s"] for row in rows) / n, 2),
    }
    return {"totals": totals, "rows": rows}


async def run_trajectory_eval(
    cases: list[Case],
    settings: Settings,
    real: bool,
    console: Console,
    status: JudgeStatus | None = None,
) -> dict[str, Any]:
    """`strategos eval`: every case on its script, or on the configured model when `real`.

    `status` says whether the judge's score counts in pass/fail; by default it follows from the
    committed agreement measurement (`strategos eval --judge`).
    """
    model = chat_model(settings) if real else None
    status = status or judge_status(load_agreement())
    results = []
    verdicts: list[dict[str, Any] | None] = []
    for index, case in enumerate(cases, 1):
        console.print(f"[{index}/{len(cases)}] {case.id} …", highlight=False)
        trajectory, events = await run_case(case, settings, model)
        results.append((case, trajectory, score(trajectory, case.reference, events)))
        verdicts.append(await _judged(case, trajectory, model, status))
    found = summary(results)
    for row, verdict in zip(found["rows"], verdicts, strict=True):
        row["judge"] = verdict
        row["passed"] = row_passed(row, status)
    found["totals"]["passed"] = round(
        sum(row["passed"] for row in found["rows"]) / max(len(found["rows"]), 1), 3
    )
    found["totals"]["judge"] = status
    found["model"] = settings.model if real else "scripted"
    return found


async def _judged(
    case: Case, trajectory: Trajectory, model: BaseChatModel | None, status: JudgeStatus
) -> dict[str, Any] | None:
    """The judge's verdict on what the reviewer raised (None: nothing raised, or no judge)."""
    if not trajectory.remarks:
        return None
    if model is None and not any(rule.get("role") == PROMPT_NAME for rule in case.script):
        return None
    judge = RemarkJudge(
        model or ScriptedChatModel.model_validate({"script": {"rules": case.script}})
    )
    scores, reasons = [], []
    for remark in trajectory.remarks:
        verdict = await judge(case.goal, trajectory.code, remark)
        scores.append(verdict["score"])
        reasons.append(verdict["comment"])
    valid = [s for s in scores if s is not None]
    return {
        "score": all(valid) if valid else None,
        "remarks": trajectory.remarks,
        "reasons": reasons,
        "status": status,
    }


def results_table(found: Mapping[str, Any]) -> Table:
    """The results as the terminal shows them (and docs/benchmarks.md copies)."""
    table = Table(title=f"trajectory evaluation ({found.get('model', '?')})")
    columns = ("case", "graph", "tools", "success", "steps", "valid", "safe", "judge", "pass")
    for column in (*columns, "calls", "wall s"):
        table.add_column(column, no_wrap=column == "case")
    for row in found["rows"]:
        table.add_row(
            row["case"],
            _mark(row["graph_strict"]),
            _mark(row["tools"]["strict"]),
            _mark(row["success"]),
            f"{row['step_efficiency']:.2f}",
            _mark(row["tool_validity"]),
            _mark(row["safety"]),
            _judge_mark(row.get("judge")),
            _mark(row.get("passed", False)),
            str(row["model_calls"]),
            f"{row['wall_s']:.1f}",
        )
    return table


def _mark(value: bool) -> str:
    return "yes" if value else "no"


def _judge_mark(verdict: Mapping[str, Any] | None) -> str:
    """The judge's score; in brackets when it is advisory (not part of pass/fail)."""
    if not verdict or verdict.get("score") is None:
        return "-"
    mark = _mark(bool(verdict["score"]))
    return mark if verdict.get("status") == "counted" else f"({mark})"
