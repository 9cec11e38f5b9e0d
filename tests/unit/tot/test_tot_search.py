"""Tree of Thoughts' search logic: pruning, backtracking, stopping and fan-out (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from graphs.tot_state import push_frontiers, round_children
from nodes.tot_search import (
    MAX_FRONTIERS,
    Child,
    EvaluateTask,
    Evaluation,
    Frontier,
    TotConfig,
    TotNode,
    evaluation_key,
    expand_sends,
    next_step,
    prune,
    scored,
)


def node(nid: str, score: int, level: int = 1, total: int = 3, **extra: Any) -> TotNode:
    base: TotNode = {
        "id": nid,
        "code": f"def f(): return {nid!r}\n",
        "parent": "",
        "level": level,
        "seed": 1,
        "score": score,
        "total": total,
        "agreement": 1,
        "failure": f"failure of {nid}",
        "checks": [],
    }
    return base | extra  # type: ignore[return-value]


def frontier(level: int, *nodes: TotNode) -> Frontier:
    return {"level": level, "round": level, "nodes": list(nodes), "best": nodes[0]["score"]}


def test_prune_keeps_the_best_children_by_score_then_agreement() -> None:
    children = [node("a", 1), node("b", 2), node("c", 2, agreement=3), node("d", 0)]
    pruned = prune(children, [], [], width=2, round_=1)
    assert [n["id"] for n in pruned.beam] == ["c", "b"]
    assert pruned.backtrack is None
    assert pruned.frontier is not None and pruned.frontier["best"] == 2
    assert [n["id"] for n in pruned.frontier["nodes"]] == ["c", "b", "a", "d"]


def test_children_as_good_as_their_parents_are_kept() -> None:
    beam = [node("p", 1)]
    pruned = prune([node("x", 1, level=2)], beam, [frontier(1, *beam)], width=2, round_=2)
    assert pruned.backtrack is None and [n["id"] for n in pruned.beam] == ["x"]


def test_children_worse_than_their_level_backtrack_to_untried_siblings_first() -> None:
    level_one = frontier(1, node("p", 2), node("q", 1), node("r", 1))
    beam = [node("p", 2)]  # width 1: only p was expanded
    pruned = prune([node("x", 1, level=2)], beam, [level_one], width=2, round_=2)
    assert pruned.frontier is None  # the worse level is not kept
    assert pruned.backtrack == {
        "round": 2,
        "level": 2,
        "child_best": 1,
        "parent_best": 2,
        "restart": ["q", "r"],
    }
    assert [n["id"] for n in pruned.beam] == ["q", "r"]


def test_when_every_sibling_was_tried_the_best_are_expanded_again() -> None:
    beam = [node("p", 2), node("q", 1)]
    pruned = prune([node("x", 0, level=2)], beam, [frontier(1, *beam)], width=2, round_=2)
    assert pruned.backtrack is not None and pruned.backtrack["restart"] == ["p", "q"]


def test_a_round_without_a_valid_program_backtracks_or_asks_the_goal_again() -> None:
    beam = [node("p", 1)]
    pruned = prune([], beam, [frontier(1, *beam)], width=2, round_=2)
    assert pruned.backtrack is not None and pruned.backtrack["child_best"] == -1
    fresh = prune([], [], [], width=2, round_=1)
    assert fresh.beam == [] and fresh.backtrack is None and fresh.frontier is None


CONFIG = TotConfig(beam_width=2, branching=2, max_depth=3, max_backtracks=1)


@pytest.mark.parametrize(
    ("best", "beam_level", "round_", "room", "expected"),
    [
        (node("a", 3), 1, 1, 100, "conclude"),  # passes every example
        (node("a", 1), 1, 1, 100, "expand"),
        (node("a", 1), 3, 3, 100, "conclude"),  # at max_depth
        (node("a", 1), 2, 4, 100, "conclude"),  # out of rounds (depth + backtracks)
        (node("a", 1), 2, 2, 7, "conclude"),  # 2 parents x 2 children + reserve do not fit
        (node("a", 1), 2, 2, 8, "expand"),
        (node("a", 0, total=0), 1, 1, 100, "conclude"),  # no examples: any program will do
        (None, 0, 1, 100, "expand"),  # nothing valid yet: the goal again
    ],
)
def test_next_step(
    best: TotNode | None, beam_level: int, round_: int, room: int, expected: str
) -> None:
    beam = [node("b1", 1, level=beam_level), node("b2", 1, level=beam_level)] if beam_level else []
    assert next_step(best, beam, round_, CONFIG, room) == expected


def test_expansion_revises_each_beam_node_with_its_failure_at_distinct_seeds() -> None:
    beam = [node("p", 1), node("q", 0)]
    sends = expand_sends("goal", "f", beam, 2, branching=3)
    tasks = [s.arg for s in sends]
    assert all(s.node == "expand" for s in sends)
    assert len({t["seed"] for t in tasks}) == 6
    assert [t["parent"] for t in tasks] == ["p"] * 3 + ["q"] * 3
    assert tasks[0]["failure"] == "failure of p" and tasks[0]["level"] == 2
    first = expand_sends("goal", "f", [], 1, branching=2)
    assert [(t.arg["parent"], t.arg["level"]) for t in first] == [("", 1), ("", 1)]
    assert {t.arg["seed"] for t in first}.isdisjoint({t["seed"] for t in tasks})


def test_scoring_counts_siblings_that_behave_alike() -> None:
    def child(cid: str) -> Child:
        return {"id": cid, "code": cid, "parent": "", "level": 1, "round": 1, "seed": 1}

    def run(outputs: list[str]) -> Evaluation:
        return {"passed": 1, "total": 1, "outputs": outputs, "failure": "", "checks": []}

    found = scored(
        [child("a"), child("b"), child("c"), child("unrun")],
        {"a": run(["1"]), "b": run(["1"]), "c": run(["2"])},
    )
    assert {n["id"]: n["agreement"] for n in found} == {"a": 2, "b": 2, "c": 1}


def test_the_cache_key_is_the_program_and_its_examples() -> None:
    task: EvaluateTask = {
        "id": "x",
        "code": "def f(): pass\n",
        "entry_point": "f",
        "goal": "g",
        "spec_checks": ["c"],
    }
    assert evaluation_key(task) == evaluation_key({**task, "id": "y", "goal": "other"})
    assert evaluation_key(task) != evaluation_key({**task, "code": "def f(): return 1\n"})
    assert evaluation_key(task) != evaluation_key({**task, "spec_checks": ["d"]})


def test_the_frontier_history_and_the_children_stay_bounded() -> None:
    levels = [frontier(i, node(f"n{i}", 1, level=i)) for i in range(1, 8)]
    kept: list[Frontier] = []
    for level in levels:
        kept = push_frontiers(kept, [level])
    assert [f["level"] for f in kept] == list(range(8 - MAX_FRONTIERS, 8))
    old: Child = {"id": "a", "code": "", "parent": "", "level": 1, "round": 1, "seed": 1}
    new: Child = {**old, "id": "b", "round": 2}
    assert list(round_children({"a": old}, {"b": new})) == ["b"]
