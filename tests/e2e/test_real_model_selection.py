"""The execution-first team on the real local model: a wrong greedy answer is not what ships.

The first greedy candidate of the task is replaced by a wrong solution (the same wrong answer a
small model gives often: the largest value instead of the second largest); every other candidate
is the real model's, sampled at the team's temperature. What the model writes on the day is not
the team's to promise, so the tests assert what the team guarantees whatever it writes: the
report is true to the delivered files, and nothing delivered passes fewer of the goal's own
examples (run here, outside the product) than any candidate left in the pool, so a wrong greedy
answer never ships over a better sample. Whether the hidden checks pass is printed, a measure
of the day's model that the benchmark tracks (eval/bench), not asserted.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver

from graphs.context import TeamContext
from graphs.selection_team import compile_selection_team
from graphs.state import Usage
from service.settings import get_settings
from service.team_deps import ServiceDeps
from tests.e2e.reports import assert_report_tells_the_truth, spec_results
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


def assert_no_better_candidate_was_passed_over(goal: str, state: dict[str, Any], out: Path) -> str:
    """The report is true, and a delivery scores the most examples in the pool; returns it."""
    report = state["report"]
    assert_report_tells_the_truth(goal, report, out)
    if report["status"] != "delivered":
        return ""
    delivered = (out / "solution.py").read_text()
    best, _ = spec_results(goal, delivered)
    for candidate in state["pool"].values():
        passed, total = spec_results(goal, candidate["code"])
        assert passed <= best, (f"{passed}/{total} passed over for {best}", candidate, delivered)
    return delivered


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
    delivered = assert_no_better_candidate_was_passed_over(GOAL, state, out)
    if delivered and spec_results(GOAL, delivered)[0] > 0:
        assert "return max(numbers)" not in delivered, delivered
    failed = hidden_checks_failed(out) if delivered else HIDDEN
    print(
        f"\nstatus {state['report']['status']}, hidden checks failed {len(failed)}/{len(HIDDEN)},"
        f" model calls {state['usage']['model_calls']}, candidates {len(state['pool'])}"
    )
