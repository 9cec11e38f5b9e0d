"""The execution-first team's router as a table: state → next step."""

from __future__ import annotations

from typing import Any

import pytest

from graphs.context import TeamContext
from graphs.deps import Limits, Sampling
from nodes.route import (
    after_approval,
    after_conclude,
    decide,
    question_key,
    repair_sends,
    sample_sends,
    stop_reason,
    trailing_repairs,
    unsettled,
    widen_sends,
)

LIMITS = Limits(max_steps=40, max_iterations=4, token_budget=10_000)
SAMPLING = Sampling(samples=4, inputs=8, widen=1, repair_rounds=2)
QUESTION = {"call": "f(1)", "output_a": "1", "output_b": "2", "a": "x", "b": "y"}


def verdict(**overrides: Any) -> dict[str, Any]:
    base = {
        "batch": 1,
        "winner": "x",
        "passes_spec": True,
        "spec_passed": 1,
        "spec_total": 1,
        "agree": False,
        "survivors": 1,
        "repairs": [],
        "cluster_sizes": [5],
    }
    return {**base, **overrides}


def state(**overrides: Any) -> Any:
    base: dict[str, Any] = {
        "goal": "Write f(x).\nExample: f(1) == 1",
        "steps": 6,
        "iteration": 1,
        "usage": {"model_calls": 5, "prompt_tokens": 100, "completion_tokens": 100},
        "batches": ["sample"],
        "pool": {"x": {"id": "x", "code": "def f(x): return x", "origin": "greedy", "batch": 1}},
        "batch": 1,
        "asked": [],
        "inputs": ["f(2)"],
    }
    return {**base, **overrides}


FAILING = verdict(
    passes_spec=False, spec_passed=0, repairs=[{"candidate": "x", "failure": "f(1) gave 2"}]
)

TABLE = [
    ("passing, one cluster", state(verdict=verdict(agree=True)), "conclude"),
    (
        "passing, two survivors, no inputs yet",
        state(verdict=verdict(survivors=2), inputs=None),
        "probe",
    ),
    ("passing, close clusters", state(verdict=verdict(question=QUESTION, survivors=2)), "referee"),
    (
        "passing, question already asked",
        state(verdict=verdict(question=QUESTION), asked=[question_key(QUESTION)]),
        "conclude",
    ),
    (
        "passing, every survivor alone",
        state(verdict=verdict(survivors=5, cluster_sizes=[1, 1, 1, 1, 1])),
        "widen",
    ),
    (
        "passing, two clusters tied",
        state(verdict=verdict(survivors=3, cluster_sizes=[2, 2, 1])),
        "widen",
    ),
    (
        "passing, widened already, close clusters",
        state(verdict=verdict(survivors=5, cluster_sizes=[3, 3], question=QUESTION), widened=[1]),
        "referee",
    ),
    (
        "passing, widened already, nothing to ask",
        state(verdict=verdict(survivors=5, cluster_sizes=[1, 1, 1]), widened=[1]),
        "conclude",
    ),
    (
        "passing, a clear winner",
        state(verdict=verdict(survivors=3, cluster_sizes=[3, 1, 1])),
        "conclude",
    ),
    (
        "passing, no room to widen",
        state(verdict=verdict(survivors=5, cluster_sizes=[1, 1, 1, 1, 1]), steps=37),
        "conclude",
    ),
    ("failing, repairs left", state(verdict=FAILING), "repair"),
    (
        "failing, two repairs in a row",
        state(verdict=FAILING, batches=["sample", "repair", "repair"]),
        "sample",
    ),
    (
        "failing, nothing to repair",
        state(verdict=verdict(passes_spec=False, spec_passed=0)),
        "sample",
    ),
    ("failing, attempts used up", state(verdict=FAILING, iteration=4), "conclude"),
    ("no valid candidate yet", state(verdict=None), "sample"),
    ("step limit", state(verdict=FAILING, steps=40), "conclude"),
    (
        "no room for another round",
        state(verdict=FAILING, batches=["repair", "repair"], steps=33),
        "conclude",
    ),
    (
        "token budget spent",
        state(
            verdict=FAILING,
            usage={"model_calls": 9, "prompt_tokens": 9_000, "completion_tokens": 1_000},
        ),
        "conclude",
    ),
]


@pytest.mark.parametrize(("name", "given", "expected"), TABLE, ids=[row[0] for row in TABLE])
def test_decide(name: str, given: Any, expected: str) -> None:
    cleaned = {k: v for k, v in given.items() if v is not None}
    assert decide(cleaned, LIMITS, SAMPLING) == expected


ABLATIONS = [
    ("no tester inputs", Sampling(inputs=0), state(verdict=verdict(survivors=2), inputs=None)),
    ("no referee", Sampling(referee=False), state(verdict=verdict(question=QUESTION))),
    ("no repairs", Sampling(repair_rounds=0), state(verdict=FAILING)),
    (
        "no widening",
        Sampling(widen=0),
        state(verdict=verdict(survivors=5, cluster_sizes=[1, 1, 1, 1, 1])),
    ),
]
ABLATED = {
    "no tester inputs": "conclude",
    "no referee": "conclude",
    "no repairs": "sample",
    "no widening": "conclude",
}


@pytest.mark.parametrize(("name", "sampling", "given"), ABLATIONS, ids=[a[0] for a in ABLATIONS])
def test_each_ablation_switches_off_its_step(name: str, sampling: Sampling, given: Any) -> None:
    cleaned = {k: v for k, v in given.items() if v is not None}
    assert decide(cleaned, LIMITS, SAMPLING) != ABLATED[name]
    assert decide(cleaned, LIMITS, sampling) == ABLATED[name]


def test_trailing_repairs_counts_since_the_last_sampling_round() -> None:
    assert trailing_repairs(["sample", "repair", "repair"]) == 2
    assert trailing_repairs(["repair", "sample"]) == 0
    assert trailing_repairs([]) == 0


def test_stop_reasons_say_why() -> None:
    assert stop_reason(state(verdict=verdict()), LIMITS) == ""
    assert stop_reason(state(verdict=FAILING, iteration=4), LIMITS) == (
        "iteration limit reached (4 attempts)"
    )
    assert stop_reason(state(verdict=None, pool={}, iteration=2), LIMITS) == (
        "no valid model output after 2 attempts"
    )
    assert stop_reason(state(verdict=FAILING, steps=40), LIMITS).startswith("step limit")


def test_approval_routes() -> None:
    assert after_conclude(TeamContext(approve="ask")) == "approval"
    assert after_conclude(TeamContext(approve="auto")) == "deliver"
    assert after_conclude(TeamContext(approve="deny")) == "deliver"
    approved = state(approval={"approved": True, "comment": ""})
    rejected = state(approval={"approved": False, "comment": "use a loop"})
    assert after_approval(approved) == "deliver"
    assert after_approval(rejected) == "sample"
    assert after_approval({**rejected, "stop_reason": "step limit reached (40 steps)"}) == "deliver"


def test_a_fresh_round_is_one_greedy_answer_and_one_call_for_n_seeded_samples() -> None:
    sends = sample_sends(
        state(batch=2, approval={"approved": False, "comment": "use a loop"}), SAMPLING
    )
    payloads = [send.arg for send in sends]
    assert [send.node for send in sends] == ["sample"] * 2
    assert [(p["origin"], p["count"], p["seed"]) for p in payloads] == [
        ("greedy", 1, 0),
        ("sample", 4, 301),
    ]
    assert {p["batch"] for p in payloads} == {3}
    assert all(p["feedback"] == "use a loop" for p in payloads)


def test_with_no_samples_a_round_is_the_greedy_answer_alone() -> None:
    sends = sample_sends(state(), Sampling(samples=0))
    assert [(send.arg["origin"], send.arg["count"]) for send in sends] == [("greedy", 1)]


def test_repairs_go_to_the_named_failing_candidates_only() -> None:
    sends = repair_sends(state(verdict=FAILING), SAMPLING)
    assert [send.node for send in sends] == ["repair"]
    assert sends[0].arg["failure"] == "f(1) gave 2"
    assert (
        repair_sends(
            state(verdict=verdict(repairs=[{"candidate": "gone", "failure": "?"}])), SAMPLING
        )
        == []
    )


def test_unsettled_means_no_cluster_stands_out() -> None:
    assert unsettled(verdict(survivors=4, cluster_sizes=[1, 1, 1, 1]))
    assert unsettled(verdict(survivors=4, cluster_sizes=[2, 2]))
    assert not unsettled(verdict(survivors=4, cluster_sizes=[3, 2]))
    assert not unsettled(verdict(survivors=1, cluster_sizes=[1]))  # the examples chose


def test_widening_draws_more_samples_into_the_judged_batch() -> None:
    first = widen_sends(state(batch=1), SAMPLING)
    assert len(first) == 1
    task = first[0].arg
    assert (task["batch"], task["count"], task["widen"], task["origin"]) == (1, 4, True, "sample")
    again = widen_sends(state(batch=1, widened=[1]), SAMPLING)[0].arg
    assert again["seed"] != task["seed"]  # new seeds, new candidates
    fresh = {s.arg["seed"] for s in sample_sends(state(batch=0), SAMPLING)}
    assert task["seed"] not in fresh | {
        s.arg["seed"] for s in sample_sends(state(batch=1), SAMPLING)
    }


CASCADE = Sampling(samples=4, widen=1, when="unsure")
GREEDY_ALONE = {"x": {"id": "x", "code": "def f(x): return x", "origin": "greedy", "batch": 1}}
CASCADE_TABLE = [
    ("the greedy answer passes the examples", state(verdict=verdict()), "conclude"),
    ("the greedy answer fails an example", state(verdict=FAILING), "widen"),
    ("it passes, but raises or changes type elsewhere", state(verdict=verdict(untyped=2)), "widen"),
    ("the goal states no example", state(verdict=verdict(spec_passed=0, spec_total=0)), "widen"),
    ("no valid greedy answer", state(verdict=None, pool={}), "widen"),
    (
        "samples drawn, no cluster stands out",
        state(verdict=verdict(survivors=5, cluster_sizes=[1, 1, 1, 1, 1]), widened=[1]),
        "widen",
    ),
    (
        "samples drawn and widened once",
        state(verdict=verdict(survivors=5, cluster_sizes=[1, 1, 1]), widened=[1, 1]),
        "conclude",
    ),
    ("samples drawn, all fail", state(verdict=FAILING, widened=[1]), "repair"),
    ("a fresh round samples as always", state(verdict=FAILING, batch=2), "repair"),
]


@pytest.mark.parametrize(
    ("name", "given", "expected"), CASCADE_TABLE, ids=[row[0] for row in CASCADE_TABLE]
)
def test_the_cascade_samples_only_when_the_greedy_answer_is_unsure(
    name: str, given: Any, expected: str
) -> None:
    cleaned = {k: v for k, v in given.items() if v is not None}
    assert decide(cleaned, LIMITS, CASCADE) == expected


def test_the_cascade_starts_with_the_greedy_answer_alone_and_samples_fresh_rounds() -> None:
    first = sample_sends(state(batch=0, pool=GREEDY_ALONE), CASCADE)
    assert [s.arg["origin"] for s in first] == ["greedy"]
    later = sample_sends(state(batch=1), CASCADE)
    assert [s.arg["origin"] for s in later] == ["greedy", "sample"]
