"""Reflexion's routers and its budget check: pure functions of the state, table-tested."""

from __future__ import annotations

from typing import Any

import pytest

from graphs.deps import Limits
from nodes.reflect import ReflexionState, after_attempt, after_reflect, halt_reason

ORIGINAL = {"pkg/calc.py": "def add(a, b):\n    return a - b\n"}
FIXED = {"pkg/calc.py": "def add(a, b):\n    return a + b\n"}


def state(**values: Any) -> ReflexionState:
    base: dict[str, Any] = {"goal": "g", "repo_files": ORIGINAL, "files": FIXED, "reflections": []}
    return ReflexionState(**(base | values))  # type: ignore[typeddict-item]


def run_of(ok: bool) -> dict[str, Any]:
    summary = "1 passed, 0 failed" if ok else "0 passed, 1 failed"
    return {
        "tool": "run_repo_tests",
        "ok": ok,
        "passed": int(ok),
        "failed": 1 - ok,
        "summary": summary,
    }


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"tests": run_of(True), "approve": "ask", "attempt": 1}, "approval"),
        ({"tests": run_of(True), "attempt": 3, "max_attempts": 3}, "approval"),  # ask by default
        ({"tests": run_of(True), "approve": "auto", "attempt": 1}, "deliver"),
        ({"tests": run_of(True), "approve": "deny", "attempt": 1}, "deliver"),
        ({"tests": run_of(True), "approve": "ask", "files": ORIGINAL}, "deliver"),  # nothing to ask
        ({"tests": run_of(False), "attempt": 1, "max_attempts": 3}, "reflect"),
        ({"tests": run_of(False), "attempt": 2, "max_attempts": 3}, "reflect"),
        ({"tests": run_of(False), "attempt": 3, "max_attempts": 3}, "give_up"),
        ({"tests": run_of(False), "attempt": 1, "max_attempts": 1}, "give_up"),
        ({"tests": run_of(False), "attempt": 3}, "give_up"),  # default: 3 attempts
        ({"attempt": 1}, "reflect"),  # the tests did not run: a failure
    ],
)
def test_after_attempt(values: dict[str, Any], expected: str) -> None:
    assert after_attempt(state(**values)) == expected


def test_after_reflect_starts_another_attempt_unless_halted() -> None:
    assert after_reflect(state()) == "attempt"
    assert after_reflect(state(halted="token budget spent: 10 of 10 tokens")) == "give_up"


def test_another_attempt_is_refused_once_the_task_budget_is_spent() -> None:
    limits = Limits(max_steps=24, max_iterations=3, token_budget=1000)
    usage = {"model_calls": 3, "prompt_tokens": 900, "completion_tokens": 100}
    assert halt_reason(state(usage=usage), limits) == "token budget spent: 1000 of 1000 tokens"
    assert halt_reason(state(usage={**usage, "prompt_tokens": 10}), limits) is None
    stop = Limits(max_steps=24, max_iterations=3, token_budget=1000, stop="quota reached")
    assert halt_reason(state(), stop) == "quota reached"
