"""The execution-first team on the real local model: a wrong greedy answer is not what ships.

The first greedy candidate of the task is replaced by a wrong solution (the same wrong answer a
small model gives often: the largest value instead of the second largest); every other candidate
is the real model's, sampled at the team's temperature. Whatever the model writes on the day,
the wrong greedy answer fails the goal's own example and is dropped, and the team keeps
sampling and repairing until a candidate passes. The test asserts what the team guarantees: the
delivered code is not the greedy answer, it passes the goal's example, and it passes the hidden
checks the team never saw (an easy task: one of several real samples is right).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver

from graphs.context import TeamContext
from graphs.selection_team import compile_selection_team
from graphs.state import Usage
from service.settings import get_settings
from service.team_deps import ServiceDeps
from tests.e2e.reports import assert_report_tells_the_truth
from tests.integration.test_team_scripted import gateway_in

pytestmark = [pytest.mark.model, pytest.mark.slow]

GOAL = (
    "Write second_largest(numbers: list[int]) -> int that returns the second largest distinct "
    "value in numbers (the list has at least two distinct values).\n"
    "Examples: second_largest([3, 1, 4, 1, 5]) == 4, second_largest([10, 10, 7]) == 7"
)
WRONG_GREEDY = "def second_largest(numbers):\n    return max(numbers)\n"
HIDDEN = [
    "assert second_largest([1, 2]) == 1",
    "assert second_largest([-5, -1, -3]) == -3",
    "assert second_largest([7, 7, 7, 2]) == 2",
]


class WrongGreedyDeps(ServiceDeps):
    """The service's dependencies, but the first greedy answer (seed 0) is a wrong solution."""

    replaced = 0

    async def ask_text(
        self, model: BaseChatModel, system: str, user: str, *, temperature: float, seed: int
    ) -> tuple[str, Usage]:
        if seed == 0 and not self.replaced:
            self.replaced += 1
            usage = Usage(model_calls=1, prompt_tokens=0, completion_tokens=0)
            return f"```python\n{WRONG_GREEDY}```\n", usage
        return await super().ask_text(model, system, user, temperature=temperature, seed=seed)


def hidden_checks_failed(out: Path) -> list[str]:
    failed = []
    for check in HIDDEN:
        done = subprocess.run(
            [sys.executable, "-c", f"from solution import *\n{check}"],
            cwd=out,
            capture_output=True,
            timeout=30,
            check=False,
        )
        if done.returncode != 0:
            failed.append(check)
    return failed


async def test_a_wrong_greedy_answer_is_dropped_and_a_right_sample_delivered(
    tmp_path: Path,
) -> None:
    deps = WrongGreedyDeps(get_settings())
    graph = compile_selection_team(deps, InMemorySaver())
    out = tmp_path / "out"
    ctx = TeamContext(
        out_dir=str(out), approve="auto", use_memory=False, gateway=await gateway_in(tmp_path)
    )
    config: RunnableConfig = {"configurable": {"thread_id": "sel-real"}, "recursion_limit": 150}
    await graph.ainvoke({"goal": GOAL}, config, context=ctx)
    state = (await graph.aget_state(config)).values

    assert deps.replaced == 1, "the greedy answer was never asked for"
    report = state["report"]
    assert_report_tells_the_truth(GOAL, report, out)
    assert report["status"] == "delivered", report
    delivered = (out / "solution.py").read_text()
    assert "return max(numbers)" not in delivered, delivered
    assert report["tests"]["spec_passed"] == report["tests"]["spec_total"] == 2, report
    assert hidden_checks_failed(out) == [], delivered
    print(f"\nmodel calls {state['usage']['model_calls']}, candidates {len(state['pool'])}")


async def test_a_benchmark_task_whose_greedy_answer_is_wrong_is_solved(tmp_path: Path) -> None:
    """HumanEval/68 (`pluck`), from the benchmark logs: the greedy answer returns `[inf, -1]`
    when no value is even, and fails the hidden tests; three of the four samples were right.
    The team runs the greedy answer and the samples on inputs mutated from the examples; the
    right ones agree, and what it delivers passes the task's hidden tests."""
    from eval.bench import goal_of
    from eval.checking import run_hidden_tests
    from eval.datasets import load_dataset
    from tools.sandbox import LocalSandbox

    task = next(t for t in load_dataset("humaneval") if t.task_id == "HumanEval/68")
    deps = ServiceDeps(get_settings().model_copy(update={"sample_when": "always"}))
    graph = compile_selection_team(deps, InMemorySaver())
    out = tmp_path / "out"
    ctx = TeamContext(
        out_dir=str(out), approve="auto", use_memory=False, gateway=await gateway_in(tmp_path)
    )
    config: RunnableConfig = {"configurable": {"thread_id": "he68"}, "recursion_limit": 150}
    goal = goal_of(task)
    await graph.ainvoke({"goal": goal, "entry_point": task.entry_point}, config, context=ctx)
    state = (await graph.aget_state(config)).values
    assert state["report"]["status"] == "delivered", state["report"]
    delivered = (out / "solution.py").read_text()
    hidden = await run_hidden_tests(task, delivered, LocalSandbox())
    assert hidden.passed, (hidden.error, delivered)
    greedy = [c for c in state["pool"].values() if c["origin"] == "greedy"]
    print(f"\ngreedy answer delivered: {bool(greedy) and greedy[0]['code'] == delivered}")
