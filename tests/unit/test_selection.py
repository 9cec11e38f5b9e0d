"""Selection by execution: spec filter, clustering, tie-breaks, questions, agreement, repairs."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from nodes.selection import (
    Cluster,
    Distinction,
    RepairTarget,
    ReviewerAnswer,
    all_agree,
    choose,
    clusters_of,
    distinguishing_input,
    needs_question,
    repair_targets,
    select,
    shape_of,
    signature_of,
    typed_outputs,
)
from tools.builtin.run_candidates import (
    CandidateResult,
    CheckResult,
    RunCandidatesResult,
    SpecCheck,
)

CHECKS = [SpecCheck(call="f(1)", expected="1"), SpecCheck(call="f(2)", expected="4")]
INPUTS = ["f(0)", "f(-1)", "f(3)"]
TIMEOUT = "raise TimeoutError: timed out"


def cand(
    cid: str,
    passed: Sequence[bool] = (True, True),
    outputs: Sequence[str] = ("0", "1", "9"),
    origin: str = "sample",
    size: int = 50,
    load_error: str = "",
    actual: str = "7",
) -> CandidateResult:
    checks = [
        CheckResult(
            passed=p, actual="x" if p else actual, error="" if p else f"f returned {actual}"
        )
        for p in passed
    ]
    return CandidateResult.model_validate(
        {
            "id": cid,
            "origin": origin,
            "size": size,
            "load_error": load_error,
            "checks": [] if load_error else checks,
            "outputs": [] if load_error else list(outputs),
        }
    )


def run(
    *candidates: CandidateResult, checks: bool = True, inputs: bool = True
) -> RunCandidatesResult:
    return RunCandidatesResult(
        checks=CHECKS if checks else [],
        inputs=INPUTS if inputs else [],
        candidates=list(candidates),
    )


def members(result: RunCandidatesResult) -> list[tuple[str, ...]]:
    return [c.members for c in select(result).clusters]


# -------------------------------------------------------------------------------- filtering
def test_candidates_failing_a_spec_check_are_dropped() -> None:
    result = run(cand("a"), cand("b", passed=(True, False)), cand("c", load_error="SyntaxError"))
    chosen = select(result)
    assert chosen.winner == "a" and chosen.passes_spec
    assert chosen.dropped == ("b", "c") and chosen.spec_total == 2


def test_when_none_passes_every_check_the_best_scorers_survive() -> None:
    result = run(
        cand("a", passed=(False, False)),
        cand("b", passed=(True, False), outputs=("0", "1", "8")),
        cand("c", passed=(False, True), outputs=("0", "1", "7")),
    )
    chosen = select(result)
    assert chosen.dropped == ("a",) and not chosen.passes_spec
    assert {m for c in chosen.clusters for m in c.members} == {"b", "c"}


def test_nothing_loads_nothing_wins() -> None:
    chosen = select(run(cand("a", load_error="boom")))
    assert chosen.winner is None and chosen.clusters == () and not chosen.passes_spec


def test_without_spec_checks_every_loaded_candidate_survives() -> None:
    chosen = select(run(cand("a", passed=()), cand("b", passed=()), checks=False))
    assert chosen.passes_spec and chosen.dropped == () and members(run()) == []


# ------------------------------------------------------------------------------- clustering
def test_the_largest_cluster_wins() -> None:
    result = run(
        cand("lone", outputs=("0", "1", "8"), origin="greedy", size=10),
        cand("x", outputs=("0", "1", "9")),
        cand("y", outputs=("0", "1", "9")),
    )
    assert members(result) == [("x", "y"), ("lone",)]
    assert select(result).winner == "x"


def test_exceptions_are_outputs_compared_by_type() -> None:
    result = run(
        cand("a", outputs=("0", "raise ValueError: negative", "9")),
        cand("b", outputs=("0", "raise ValueError: bad input", "9")),
        cand("c", outputs=("0", "raise IndexError: list index out of range", "9")),
    )
    assert members(result) == [("a", "b"), ("c",)]


def test_timeouts_cluster_together() -> None:
    result = run(
        cand("a", outputs=("0", TIMEOUT, TIMEOUT)), cand("b", outputs=("0", TIMEOUT, TIMEOUT))
    )
    assert members(result) == [("a", "b")]


def test_votes_weigh_a_cluster() -> None:
    result = run(cand("a", outputs=("0", "1", "8")), cand("b"), cand("c"))
    assert select(result).winner == "b"
    assert select(result, weights={"a": 3}).winner == "a"
    assert select(result, weights={"a": 3}).clusters[0].size == 3


@pytest.mark.parametrize(
    ("one", "two", "winner"),
    [
        ({"origin": "sample", "size": 90}, {"origin": "greedy", "size": 99}, "two"),
        ({"origin": "sample", "size": 90}, {"origin": "sample", "size": 80}, "two"),
        ({"origin": "sample", "size": 80}, {"origin": "sample", "size": 80}, "one"),
        ({"origin": "greedy", "size": 99}, {"origin": "repair", "size": 10}, "one"),
    ],
    ids=["greedy first", "shorter code", "run order", "greedy before shorter"],
)
def test_tie_breaks_between_equal_clusters(
    one: dict[str, object], two: dict[str, object], winner: str
) -> None:
    result = run(
        cand("one", outputs=("0", "1", "8"), **one),  # type: ignore[arg-type]
        cand("two", **two),  # type: ignore[arg-type]
    )
    assert select(result).winner == winner


def test_more_spec_passed_breaks_a_size_tie_first() -> None:
    result = run(
        cand("one", passed=(True, False), outputs=("0", "1", "8"), origin="greedy", size=1),
        cand("two", passed=(True, True)),
    )
    pairs = list(enumerate(result.candidates))
    assert [c.best for c in clusters_of(result, pairs)] == ["two", "one"]


def test_the_best_member_leads_its_cluster() -> None:
    result = run(
        cand("long", size=99), cand("short", size=10), cand("greedy", origin="greedy", size=50)
    )
    assert select(result).clusters[0].members == ("greedy", "short", "long")


def test_signature_of_keeps_values_and_reduces_exceptions_to_their_type() -> None:
    assert signature_of("'raise x'") == "'raise x'"
    assert signature_of("raise KeyError: 'a'") == "raise KeyError"
    assert signature_of("[1, 2]") == "[1, 2]"


def test_shape_of_names_containers_with_their_element_types() -> None:
    assert shape_of("[2, 1]") == "list[int]"
    assert shape_of("[inf, -1]") is None  # not a literal: float('inf') prints as a name
    assert shape_of("[2.5, -1]") == "list[float|int]"
    assert shape_of("('a', 1)") == "tuple[int|str]"
    assert shape_of("{'a': [1]}") == "dict[str:list[int]]"
    assert shape_of("raise ValueError: min() arg is empty") is None


def test_typed_outputs_count_outputs_shaped_like_the_examples() -> None:
    shapes = {shape_of("[2, 1]"), shape_of("[]")}
    outputs = ["[4, 0]", "[]", "[inf, -1]", "raise ValueError: x", "[1.5, 2]"]
    assert typed_outputs(outputs, shapes) == 2
    assert typed_outputs(outputs, set()) == 0


def test_between_equal_clusters_the_one_typed_like_the_examples_wins() -> None:
    # Two clusters of two: one returns [inf, -1] when no element qualifies, one returns [].
    listing = ("[inf, -1]", "[2, 0]")
    empty = ("[]", "[2, 0]")
    result = RunCandidatesResult(
        checks=[SpecCheck(call="f([4, 2, 3])", expected="[2, 1]")],
        inputs=["f([3, 3])", "f([2, 2])"],
        candidates=[
            cand("g", passed=(True,), outputs=listing, origin="greedy"),
            cand("s1", passed=(True,), outputs=listing),
            cand("s2", passed=(True,), outputs=empty),
            cand("s3", passed=(True,), outputs=empty),
        ],
    )
    assert select(result).winner == "s2"


# -------------------------------------------------------------------------------- questions
def cluster(size: int, outputs: Sequence[str] = ("0", "1", "9")) -> Cluster:
    return Cluster(
        members=("m",) * size,
        size=size,
        inputs=tuple(INPUTS),
        outputs=tuple(outputs),
        spec_passed=2,
        typed=0,
        greedy=False,
        shortest=10,
        first=0,
    )


@pytest.mark.parametrize(
    ("sizes", "asked"),
    [
        ((3,), False),
        ((1, 1), True),
        ((2, 1), True),
        ((3, 1), False),
        ((4, 3, 3), True),
        ((), False),
    ],
)
def test_a_question_only_when_the_top_two_are_close(sizes: tuple[int, ...], asked: bool) -> None:
    assert needs_question([cluster(s) for s in sizes]) is asked


def test_the_margin_is_adjustable() -> None:
    assert needs_question([cluster(3), cluster(1)], margin=2)
    assert not needs_question([cluster(2), cluster(1)], margin=0)


def test_distinguishing_input_is_the_first_difference() -> None:
    a = cluster(2, ("0", "raise ValueError: x", "9"))
    b = cluster(1, ("0", "raise ValueError: y", "27"))
    found = distinguishing_input(a, b)
    assert found == Distinction(call="f(3)", output_a="9", output_b="27")
    assert found.describe() == "Input: f(3)\nOutput A: 9\nOutput B: 27"


def test_identical_clusters_have_no_distinguishing_input() -> None:
    assert distinguishing_input(cluster(1), cluster(1)) is None


def test_a_real_selection_yields_a_question_and_the_answer_picks_a_cluster() -> None:
    result = run(cand("a"), cand("b", outputs=("0", "raise ValueError: no", "9")))
    chosen = select(result)
    assert needs_question(chosen.clusters)
    first, second = chosen.clusters[:2]
    assert distinguishing_input(first, second) == Distinction("f(-1)", "1", "raise ValueError: no")
    assert choose(first, second, ReviewerAnswer(answer="B")) is second
    assert choose(first, second, ReviewerAnswer(answer="A")) is first
    assert choose(first, second, ReviewerAnswer(answer="neither")) is None


# -------------------------------------------------------------------------------- agreement
@pytest.mark.parametrize(
    ("result", "agree"),
    [
        (run(cand("a"), cand("b")), True),
        (
            run(
                cand("a", outputs=("0", "raise E: 1", "9")),
                cand("b", outputs=("0", "raise E: 2", "9")),
            ),
            True,
        ),
        (run(cand("a", passed=()), cand("b", passed=()), checks=False), True),
        (run(cand("a"), cand("b", passed=(True, False))), False),
        (run(cand("a"), cand("b", outputs=("0", "1", "8"))), False),
        (run(cand("a"), cand("b", load_error="boom")), False),
        (run(cand("a")), False),
        (
            run(
                cand("a", passed=(), outputs=()),
                cand("b", passed=(), outputs=()),
                checks=False,
                inputs=False,
            ),
            False,
        ),
    ],
    ids=[
        "agree",
        "same exception types",
        "inputs only",
        "one fails the spec",
        "two clusters",
        "one does not load",
        "one candidate is no agreement",
        "nothing to agree on",
    ],
)
def test_all_agree(result: RunCandidatesResult, agree: bool) -> None:
    assert all_agree(result) is agree


# ---------------------------------------------------------------------------------- repairs
def test_repair_targets_name_the_first_failure_verbatim() -> None:
    traceback = 'Traceback (most recent call last):\n  File "solution.py", line 2\nValueError: x'
    failing = cand("a", passed=(True, False))
    failing.checks[1] = CheckResult(passed=False, actual="raise ValueError: x", error=traceback)
    [target] = repair_targets(run(failing, cand("ok")))
    assert target == RepairTarget("a", "f(2)", "4", "raise ValueError: x", traceback)
    assert target.describe() == (
        f"Failing call: f(2)\nExpected: 4\nActual: raise ValueError: x\nError:\n{traceback}"
    )


def test_repair_targets_rank_by_spec_passed_then_loaded_then_greedy_then_size() -> None:
    result = run(
        cand("broken", load_error="SyntaxError: x"),
        cand("none", passed=(False, False), actual="8"),
        cand("half_long", passed=(True, False), size=90),
        cand("half_greedy", passed=(False, True), origin="greedy", size=95),
    )
    assert [t.candidate for t in repair_targets(result, k=4)] == [
        "half_greedy",
        "half_long",
        "none",
        "broken",
    ]


def test_a_load_error_is_a_repair_target_of_its_own() -> None:
    [target] = repair_targets(run(cand("a", load_error="SyntaxError: '(' was never closed")))
    assert target.call == "" and target.describe().startswith("The code does not load:\n")


def test_distinct_failures_come_before_repeats() -> None:
    result = run(
        cand("a", passed=(True, False), size=10),
        cand("b", passed=(True, False), size=20),  # the same failure as a
        cand("c", passed=(False, True), size=30),
    )
    assert [t.candidate for t in repair_targets(result, k=2)] == ["a", "c"]
    assert [t.candidate for t in repair_targets(result, k=3)] == ["a", "c", "b"]


def test_no_repair_targets_when_everything_passes_or_k_is_zero() -> None:
    assert repair_targets(run(cand("a"), cand("b"))) == []
    assert repair_targets(run(cand("a", passed=(False, False))), k=0) == []


def test_an_incomplete_report_counts_as_a_failure() -> None:
    short = cand("a", passed=(True,))
    [target] = repair_targets(run(short))
    assert (target.call, target.error) == ("f(2)", "not run")
