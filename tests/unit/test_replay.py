"""Selection rules replayed on recorded candidates: votes, subsets, inputs and greedy weight."""

from __future__ import annotations

from eval.pools import PoolRecord, RecordedCandidate, merged
from eval.replay import RULES, Rule, score
from tools.builtin.run_candidates import (
    CandidateResult,
    CheckResult,
    RunCandidatesResult,
    SpecCheck,
)


def _candidate(cid: str, origin: str, passed: bool, votes: int = 1) -> RecordedCandidate:
    return {
        "id": cid,
        "origin": origin,
        "batch": 1,
        "votes": votes,
        "code": f"def f(x):\n    return {cid!r}\n",
        "hidden_passed": passed,
    }


def _entry(candidates: list[RecordedCandidate], replies: list[str]) -> PoolRecord:
    return {
        "task_id": "T/1",
        "entry_point": "f",
        "spec_checks": [],
        "inputs": ["f(2)"],
        "candidates": candidates,
        "replies": replies,
        "winner": "",
        "batches": ["sample"],
        "asked": 0,
    }


def _run(outputs: dict[str, str], failing_spec: tuple[str, ...] = ()) -> RunCandidatesResult:
    return RunCandidatesResult(
        checks=[SpecCheck(call="f(1)", expected="1")],
        inputs=["f(2)"],
        candidates=[
            CandidateResult(
                id=cid,
                origin="greedy" if cid == "g" else "sample",
                size=10,
                checks=[CheckResult(passed=cid not in failing_spec, actual="1")],
                outputs=[out],
            )
            for cid, out in outputs.items()
        ],
    )


def _rule(name: str) -> Rule:
    return next(rule for rule in RULES if rule.name == name)


# The greedy answer is right; two samples agree on a wrong output, one sample agrees with greedy.
ENTRY = _entry(
    [
        _candidate("g", "greedy", True),
        _candidate("w", "sample", False, votes=2),
        _candidate("s", "sample", True),
    ],
    replies=["g", "w", "w", "s"],
)
RUN = _run({"g": "4", "w": "5", "s": "4"})


def test_all_samples_and_greedy_agreeing_on_the_right_output_win() -> None:
    # Clusters: {g, s} with 2 votes, {w} with 2 votes; the tie goes to the greedy cluster.
    assert score(ENTRY, RUN, _rule("N=4 (team)")) is True


def test_fewer_samples_change_the_vote() -> None:
    # Greedy plus the first sample (w): one vote each, the tie goes to greedy.
    assert score(ENTRY, RUN, _rule("N=1")) is True
    # Greedy plus the first two samples (both w): the wrong cluster has 2 votes to 1.
    assert score(ENTRY, RUN, _rule("N=2")) is False
    assert score(ENTRY, RUN, _rule("greedy only (N=0)")) is True


def test_a_heavier_greedy_answer_outweighs_a_repeated_wrong_sample() -> None:
    entry = _entry(
        [
            _candidate("g", "greedy", True),
            _candidate("w", "sample", False, votes=3),
            _candidate("s", "sample", True),
        ],
        replies=["g", "w", "w", "w", "s"],
    )
    assert score(entry, RUN, _rule("N=4 (team)")) is False
    assert score(entry, RUN, _rule("N=4, greedy weighs 3")) is True
    assert score(entry, RUN, _rule("any candidate passes (oracle)")) is True


def test_without_inputs_only_the_examples_and_votes_decide() -> None:
    # Without the tester's inputs every spec-passing candidate is one cluster: the best member
    # (greedy) is delivered, however the samples would have split on the inputs.
    entry = _entry(
        [_candidate("g", "greedy", False), _candidate("w", "sample", True, votes=3)],
        replies=["g", "w", "w", "w"],
    )
    run = _run({"g": "4", "w": "5"})
    assert score(entry, run, _rule("N=4 (team)")) is True
    assert score(entry, run, _rule("N=4, no tester inputs")) is False


def test_a_candidate_failing_an_example_is_never_chosen() -> None:
    entry = _entry(
        [_candidate("g", "greedy", False), _candidate("s", "sample", True)],
        replies=["g", "s"],
    )
    run = _run({"g": "4", "s": "5"}, failing_spec=("g",))
    assert all(score(entry, run, rule) for rule in RULES if rule.samples != 0)
    assert score(entry, run, _rule("greedy only (N=0)")) is False


def test_merged_counts_every_reply_once_per_batch() -> None:
    seen = [
        {"id": "a", "code": "x", "origin": "sample", "batch": 1, "votes": 1},
        {"id": "a", "code": "x", "origin": "greedy", "batch": 1, "votes": 1},
        {"id": "b", "code": "y", "origin": "sample", "batch": 1, "votes": 1},
        {"id": "a", "code": "x", "origin": "repair", "batch": 2, "votes": 1},
    ]
    found = merged(seen)  # type: ignore[arg-type]
    # A sample identical to the greedy answer is one candidate, greedy, with both votes.
    assert [(c["id"], c["origin"], c["batch"], c["votes"]) for c in found] == [
        ("a", "greedy", 1, 2),
        ("b", "sample", 1, 1),
        ("a", "repair", 2, 1),
    ]
