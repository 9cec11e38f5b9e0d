"""What Reflexion keeps and shows: the critiques' reducer, the next opening, the give-up reason."""

from __future__ import annotations

from typing import Any

from nodes.react_support import GOAL
from nodes.reflect import (
    MAX_KEPT_REFLECTIONS,
    RETRY_HEADER,
    Critique,
    Reflection,
    ReflexionState,
    append_reflections,
    attempt_opening,
    give_up_reason,
)

FILES = {"pkg/calc.py": "x", "tests/test_calc.py": "y"}


def reflection(attempt: int, critique: str = "") -> Reflection:
    return {
        "attempt": attempt,
        "tests": "0 passed, 1 failed",
        "critique": critique or f"c{attempt}",
    }


def test_critiques_are_appended_in_order_and_bounded() -> None:
    assert append_reflections(None, [reflection(1)]) == [reflection(1)]
    assert append_reflections([reflection(1)], [reflection(2)]) == [reflection(1), reflection(2)]
    many = append_reflections([reflection(i) for i in range(1, 10)], [reflection(10)])
    assert len(many) == MAX_KEPT_REFLECTIONS and many[-1]["attempt"] == 10
    assert many[0]["attempt"] == 10 - MAX_KEPT_REFLECTIONS + 1


def test_the_first_opening_is_the_workers_own_and_later_ones_carry_every_critique() -> None:
    first = attempt_opening("fix add", FILES, [])
    assert first.name == GOAL and RETRY_HEADER not in str(first.content)
    later = attempt_opening("fix add", FILES, [reflection(1, "use +"), reflection(2, "not *")])
    text = str(later.content)
    assert later.name == GOAL  # the worker does not add its own opening on top
    assert text.startswith("Goal: fix add") and "- pkg/calc.py" in text
    assert "Attempt 1 (0 passed, 1 failed): use +" in text
    assert "Attempt 2 (0 passed, 1 failed): not *" in text


def test_a_critique_is_bounded_and_reads_as_one_line() -> None:
    critique = Critique(what_failed="add(2, 3) returned 6. ", do_differently=" Use a + b.")
    assert critique.text() == "add(2, 3) returned 6. Next time: Use a + b."
    assert Critique.model_json_schema()["properties"]["what_failed"]["maxLength"] == 300


def test_the_give_up_reason_names_the_attempts_or_the_budget_and_the_last_tests() -> None:
    tests: dict[str, Any] = {"summary": "0 passed, 1 failed; failing: t::a", "ok": False}
    base: dict[str, Any] = {"goal": "g", "files": {}, "tests": tests, "reflections": []}
    spent = ReflexionState(**base, attempt=3, max_attempts=3)  # type: ignore[typeddict-item]
    assert give_up_reason(spent) == (
        "not delivered: no attempt passed the repository's tests (3 of 3); "
        "last: 0 passed, 1 failed; failing: t::a"
    )
    halted = ReflexionState(**base, attempt=1, halted="token budget spent")  # type: ignore[typeddict-item]
    assert give_up_reason(halted).startswith("not delivered: token budget spent; ")
