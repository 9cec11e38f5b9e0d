"""Plan-and-Solve on the scripted model: waves of real ReAct workers, real gateway and sandbox.

The planner, the re-planner and each worker's tool calls are scripted; the workers' patches,
the subtasks' checks (the repository's pytest in the sandbox, or a python snippet) and the
merges are real.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from graphs.context import TeamContext
from graphs.plan_state import PlanInput
from service.team_deps import compile_plan_solve_agent
from tests.conftest import OPEN_LEDGERS, scripted
from tests.integration.react.scripted_loop import call
from tests.integration.test_team_scripted import gateway_in
from tools.builtin import default_registry
from tools.gateway import ToolGateway
from tools.ledger import open_ledger
from tools.policy import Policy, PolicyConfig, ToolRule
from tools.sandbox import LocalSandbox

CALC = "def add(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return a + b\n"
FILES = {
    "pkg/__init__.py": "",
    "pkg/calc.py": CALC,
    "tests/test_calc.py": (
        "from pkg.calc import add, mul\n\n\n"
        "def test_add():\n    assert add(2, 3) == 5\n\n\n"
        "def test_mul():\n    assert mul(2, 3) == 6\n"
    ),
}
GOAL = "Both tests in tests/test_calc.py fail; fix pkg/calc.py."
ROUNDED = "import inspect\nimport pkg.calc\n\nassert 'round(' in inspect.getsource(pkg.calc.add)\n"


FIXED_ADD = CALC.replace("return a - b", "return a + b")


def patch(old: str, new: str, before: str = CALC) -> str:
    """A unified diff of pkg/calc.py replacing the first line `old` of `before`."""
    lines = before.splitlines()
    index = lines.index(f"    {old}")
    return (
        "--- a/pkg/calc.py\n+++ b/pkg/calc.py\n"
        f"@@ -{index},2 +{index},2 @@\n {lines[index - 1]}\n-    {old}\n+    {new}\n"
    )


def subtask(id_: str, goal: str, check: dict[str, str], *deps: str) -> dict[str, Any]:
    return {
        "id": id_,
        "goal": goal,
        "files": ["pkg/calc.py"],
        "depends_on": list(deps),
        "check": check,
    }


def worker(phrase: str, old: str, new: str, before: str = CALC) -> list[dict[str, Any]]:
    """A worker that patches one line when its goal holds `phrase`, then finishes."""
    return [
        {
            "role": "react",
            "when": [phrase, '"action": "modified"'],
            "tool_calls": [call("finish", summary=f"{old} -> {new}")],
        },
        {
            "role": "react",
            "when": [phrase],
            "tool_calls": [call("apply_patch", patch=patch(old, new, before))],
        },
    ]


FIX_ADD = subtask(
    "s1", "Fix add so it adds", {"kind": "test", "target": "tests/test_calc.py::test_add"}
)
FIX_MUL = subtask(
    "s2", "Fix mul so it multiplies", {"kind": "test", "target": "tests/test_calc.py::test_mul"}
)
ROUND_ADD = subtask("s2", "Make add round its result", {"kind": "python", "target": ROUNDED})
LOG_ADD = subtask(
    "s3", "Make add use abs", {"kind": "test", "target": "tests/test_calc.py::test_add"}, "s1"
)
REVISED = {"revisions": [{"id": "s2", "goal": "Wrap the merged sum of add in round()"}]}
WORKERS = [
    *worker("Fix add so it adds", "return a - b", "return a + b"),
    *worker("Fix mul so it multiplies", "return a + b", "return a * b"),
    *worker("Make add round its result", "return a - b", "return round(a - b)"),
    *worker(
        "Wrap the merged sum of add in round()", "return a + b", "return round(a + b)", FIXED_ADD
    ),
    *worker("Make add use abs", "return a + b", "return abs(a + b)", FIXED_ADD),
]


async def run(tmp_path: Path, plan: list[dict[str, Any]]) -> dict[str, Any]:
    rules = [
        {"role": "planner", "reply": {"subtasks": plan}},
        {"role": "replanner", "reply": REVISED},
        *WORKERS,
    ]
    ctx = TeamContext(
        model=scripted(rules),
        gateway=await gateway_in(tmp_path),
        use_memory=False,
        approve="auto",
    )
    graph = compile_plan_solve_agent(InMemorySaver())
    config: RunnableConfig = {"configurable": {"thread_id": "plan-t"}, "recursion_limit": 100}
    task: PlanInput = {"goal": GOAL, "repo_files": dict(FILES)}
    result: dict[str, Any] = await graph.ainvoke(task, config, context=ctx)
    return result


async def test_two_independent_subtasks_run_in_one_wave_and_their_edits_merge(
    tmp_path: Path,
) -> None:
    final = await run(tmp_path, [FIX_ADD, FIX_MUL])

    assert final["outcome"]["status"] == "finished", final["outcome"]
    assert final["wave"] == 1
    results = final["results"]
    assert {r["wave"] for r in results.values()} == {1}
    assert results["s1"]["check"].startswith("passed (1 passed, 0 failed)")
    assert "+    return a * b" in results["s2"]["patch"]
    assert "return a + b" not in results["s2"]["changes"]["pkg/calc.py"].split("def mul")[0]
    assert final["files"]["pkg/calc.py"] == (
        "def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    return a * b\n"
    )
    assert final["repo_files"] == FILES


async def test_two_subtasks_editing_the_same_line_are_replanned_not_overwritten(
    tmp_path: Path,
) -> None:
    final = await run(tmp_path, [FIX_ADD, ROUND_ADD])

    assert final["outcome"]["status"] == "finished", final["outcome"]
    assert final["wave"] == 2
    s2 = final["results"]["s2"]
    assert (s2["wave"], s2["attempt"], s2["status"]) == (2, 1, "done")
    assert "return round(a + b)" in final["files"]["pkg/calc.py"]
    notes = [m.content for m in final["messages"]]
    assert any("s2 conflicts with s1 in pkg/calc.py (line 2 and line 2)" in n for n in notes)
    plan = {s["id"]: s for s in final["plan"]}
    assert plan["s2"]["goal"] == REVISED["revisions"][0]["goal"]


async def test_a_subtask_that_clashes_again_after_its_replan_stops_the_task(
    tmp_path: Path,
) -> None:
    final = await run(tmp_path, [FIX_ADD, LOG_ADD, ROUND_ADD])

    outcome = final["outcome"]
    assert outcome["status"] == "stopped"
    assert outcome["reason"] == (
        "subtask(s) s2 still conflict after one re-plan (pkg/calc.py line 2 and line 2)"
    )
    assert "return abs(a + b)" in final["files"]["pkg/calc.py"]  # s3's edit, kept


async def test_an_invalid_plan_goes_back_once_then_the_task_stops_with_the_reason(
    tmp_path: Path,
) -> None:
    cyclic = [subtask("a", "x", FIX_ADD["check"], "b"), subtask("b", "y", FIX_ADD["check"], "a")]
    final = await run(tmp_path, cyclic)

    assert final["outcome"]["status"] == "stopped"
    assert final["outcome"]["reason"] == (
        "the plan is still invalid after one retry: "
        "the dependencies form a cycle: a -> b -> a (each depends on the next)"
    )
    assert final["usage"]["model_calls"] == 2
    assert final["files"] == FILES


async def test_a_failed_check_is_not_merged_and_its_dependents_do_not_run(tmp_path: Path) -> None:
    wrong_check = {**FIX_ADD, "check": {"kind": "test", "target": "tests/test_calc.py::test_mul"}}
    final = await run(tmp_path, [wrong_check, LOG_ADD])

    outcome = final["outcome"]
    assert outcome["status"] == "stopped"
    assert outcome["reason"].startswith("s1 failed its check (failed (0 passed, 1 failed)")
    assert outcome["reason"].endswith("s3 did not run (a subtask they depend on is not done)")
    assert final["files"] == FILES
    assert "+    return a + b" in final["results"]["s1"]["patch"]  # kept for people to read


async def test_a_check_held_for_a_human_resumes_without_running_the_worker_again(
    tmp_path: Path,
) -> None:
    model = scripted([{"role": "planner", "reply": {"subtasks": [ROUND_ADD]}}, *WORKERS])
    ledger = await open_ledger(str(tmp_path / "held.sqlite"))
    OPEN_LEDGERS.append(ledger)
    asks = Policy(PolicyConfig(tools={"run_python": ToolRule(require_approval=True)}))
    gateway = ToolGateway(default_registry(), ledger, asks, sandbox=LocalSandbox())
    ctx = TeamContext(model=model, gateway=gateway, use_memory=False, approve="ask")
    graph = compile_plan_solve_agent(InMemorySaver())
    config: RunnableConfig = {"configurable": {"thread_id": "plan-ask"}, "recursion_limit": 100}
    task: PlanInput = {"goal": GOAL, "repo_files": dict(FILES)}
    await graph.ainvoke(task, config, context=ctx)
    paused = await graph.aget_state(config)
    assert paused.interrupts, "the snippet check (run_python) waits for a human"
    calls_before = model.calls

    final = await graph.ainvoke(Command(resume={"type": "accept"}), config, context=ctx)

    assert final["outcome"]["status"] == "finished", final["outcome"]
    assert "return round(a - b)" in final["files"]["pkg/calc.py"]
    assert model.calls == calls_before  # the worker's turns were not asked again
    events = await gateway.ledger.events("plan-ask", 0, 10_000, kinds=["ActivityScheduled"])
    assert [e.data.get("tool") for e in events].count("apply_patch") == 1
