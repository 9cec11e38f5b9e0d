"""The one prompt packer: order, shares, what is never dropped, and shedding to the budget."""

from __future__ import annotations

import pytest

from memory.packing import (
    RECENT_TITLE,
    SUMMARY_TITLE,
    Budget,
    Line,
    PinnedOverBudget,
    PromptParts,
    Section,
    pack,
    unpacked,
)
from memory.tokens import CharTokenCounter

COUNTER = CharTokenCounter(4.0)
GOAL = Section("Goal", "Write add(a, b) returning a + b.")


class JoinsCostMore:
    """A tokenizer whose whole text costs more than its parts: packing must shed."""

    def count(self, text: str) -> int:
        return len(text) // 4 + 6 * text.count("\n")


def lines(n: int) -> list[Line]:
    return [Line(f"- coder: attempt {i} failed on input {i}.") for i in range(n)]


def test_parts_render_in_order_and_an_unpressed_prompt_equals_the_unpacked_one() -> None:
    parts = PromptParts(
        pinned=[GOAL],
        lines=lines(2),
        memories=["use + not -"],
        memories_title="Lessons",
        required=[Section("Code", "def add(a, b):\n    return a - b")],
    )
    packed = pack(parts, Budget(1000, COUNTER))
    text = packed.text
    assert text.index("Goal:") < text.index(f"{RECENT_TITLE}:") < text.index("Lessons:")
    assert text.endswith("Code:\ndef add(a, b):\n    return a - b")
    assert text == unpacked(parts) and packed.tokens == COUNTER.count(text)
    assert packed.shown == (0, 1) and packed.shortened == ()


def test_recent_lines_are_the_newest_unbroken_run_and_held_lines_always_show() -> None:
    history = [Line("- approval: human said add a docstring", held=True), *lines(40)]
    packed = pack(PromptParts(pinned=[GOAL], lines=history), Budget(200, COUNTER, fixed=20))
    assert packed.tokens <= 200
    assert 0 in packed.shown
    loose = [i for i in packed.shown if i]
    assert loose == list(range(41 - len(loose), 41)), "newest first, no gaps"


def test_required_sections_are_shortened_never_dropped_and_fitted_first() -> None:
    code = "def add(a, b):\n" + "".join(f"    x{i} = {i}\n" for i in range(300))
    parts = PromptParts(
        pinned=[GOAL],
        lines=lines(5),
        summary="Attempt 1 failed.",
        required=[Section("Code", code, keep="head"), Section("Failures", "add(2, 3) == -1")],
    )
    packed = pack(parts, Budget(400, COUNTER))
    assert packed.tokens <= 400
    assert packed.shortened == ("Code", "Failures")
    assert packed.bodies[0].startswith("def add(a, b):")
    assert not packed.summary and not packed.shown, "what the call needs comes first"


def test_the_summary_keeps_its_head_and_the_newest_sentences_within_its_share() -> None:
    parts = PromptParts(
        pinned=[GOAL],
        summary_head="Attempts so far: 9.",
        summary=" ".join(f"Attempt {i} failed." for i in range(200)),
    )
    packed = pack(parts, Budget(400, COUNTER))
    assert packed.summary.startswith("Attempts so far: 9.\nEarlier steps: ")
    assert packed.summary.endswith("Attempt 199 failed.")
    assert COUNTER.count(packed.summary) <= 400 // 4
    assert f"{SUMMARY_TITLE}:\n{packed.summary}" in packed.text


def test_parts_are_shed_when_the_whole_costs_more_than_its_parts() -> None:
    counter = JoinsCostMore()
    parts = PromptParts(pinned=[GOAL], lines=lines(30), memories=["a", "b", "c"])
    packed = pack(parts, Budget(300, counter))
    assert packed.tokens == counter.count(packed.text) <= 300


def test_pinned_parts_over_the_budget_raise_with_the_callers_advice() -> None:
    parts = PromptParts(pinned=[Section("Goal", "x" * 4000)])
    with pytest.raises(PinnedOverBudget, match="set BUDGET higher"):
        pack(parts, Budget(500, COUNTER, advice="set BUDGET higher"))
