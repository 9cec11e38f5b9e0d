"""Tree of Thoughts over programs: the beam, pruning and backtracking (pure, table-tested).

A node of the tree is a candidate program with its score on the goal's own examples. Each
round expands every node of the beam into `branching` children (the first round expands the
goal itself), the children are run, and `prune` keeps the best `beam_width` of them. When the
best child scores lower than the best of the level it grew from, the children are dropped and
the search **backtracks**: the next round starts again from that level's best nodes, untried
siblings first, with fresh seeds. Every level kept is pushed onto a bounded frontier history,
so a backtrack knows which nodes it may return to without the whole tree in the checkpoint.

Everything here is a pure function of its arguments; the nodes (`nodes/tot.py`) do the I/O.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from langgraph.types import Send
from typing_extensions import TypedDict

from graphs.state import CheckResult

MAX_FRONTIERS = 4
"""Levels the frontier history keeps (a backtrack goes back one level; older ones are gone)."""
MAX_BACKTRACKS_KEPT = 16
SEEDS_PER_ROUND = 100
SEEDS_PER_PARENT = 10
STEPS_RESERVE = 4
"""Steps a round still needs after its model calls: prune, conclude, approval, deliver."""


@dataclass(frozen=True)
class TotConfig:
    """The search's shape: how wide, how deep, how many children per node."""

    beam_width: int = 2
    branching: int = 2
    """Children each beam node is expanded into per round (distinct seeds)."""
    max_depth: int = 3
    """Levels of the tree: the goal's fresh programs are level 1."""
    max_backtracks: int = 2
    """Rounds that may be spent re-expanding a level after its children came out worse."""

    @property
    def max_rounds(self) -> int:
        """Expansion rounds in all: one per level, plus the ones backtracks spend."""
        return self.max_depth + self.max_backtracks


class Child(TypedDict):
    """A program an expansion proposed, before it is run."""

    id: str
    code: str
    parent: str
    """The parent node's id ("" for a fresh program from the goal)."""
    level: int
    round: int
    seed: int


class Evaluation(TypedDict):
    """One program's run on the goal's examples (and mutated inputs, for agreement)."""

    passed: int
    total: int
    outputs: list[str]
    failure: str
    """The first failing check (call, expected, actual, error) verbatim, or why it did not load."""
    checks: list[CheckResult]


class TotNode(TypedDict):
    """A scored node of the tree."""

    id: str
    code: str
    parent: str
    level: int
    seed: int
    score: int
    total: int
    agreement: int
    """Siblings of its round (itself included) with the same outputs: the tie-break."""
    failure: str
    checks: list[CheckResult]


class Frontier(TypedDict):
    """A level that was kept: its best nodes, best first."""

    level: int
    round: int
    nodes: list[TotNode]
    best: int


class Backtrack(TypedDict):
    """A round whose children were dropped because they scored below their level."""

    round: int
    level: int
    """The level of the dropped children."""
    child_best: int
    parent_best: int
    restart: list[str]
    """Ids of the nodes the next round expands instead."""


class ExpandTask(TypedDict):
    """One model call of a round (a `Send` payload): a fresh program, or a revision."""

    goal: str
    entry_point: str
    parent: str
    parent_code: str
    failure: str
    level: int
    round: int
    seed: int


class EvaluateTask(TypedDict):
    """One program to run (a `Send` payload); the cache key is a hash of all of it."""

    id: str
    code: str
    entry_point: str
    goal: str
    spec_checks: list[str]


class TotView(TypedDict, total=False):
    """The part of the graph's state (`graphs/tot_state.py: TotState`) the nodes read."""

    goal: str
    round: int
    children: dict[str, Child]
    evaluations: dict[str, Evaluation]
    beam: list[TotNode]
    frontiers: list[Frontier]
    found: TotNode | None
    iteration: int
    destination: str


@dataclass(frozen=True)
class Pruned:
    """What `prune` decided for one round."""

    beam: list[TotNode]
    frontier: Frontier | None
    """The level pushed onto the history (None on a backtrack)."""
    backtrack: Backtrack | None


def scored(children: Sequence[Child], evaluations: dict[str, Evaluation]) -> list[TotNode]:
    """The round's children that were run, with score and agreement."""
    runs = [(c, evaluations[c["id"]]) for c in children if c["id"] in evaluations]
    alike = Counter(tuple(e["outputs"]) for _, e in runs)
    return [
        {
            "id": child["id"],
            "code": child["code"],
            "parent": child["parent"],
            "level": child["level"],
            "seed": child["seed"],
            "score": run["passed"],
            "total": run["total"],
            "agreement": alike[tuple(run["outputs"])] if run["outputs"] else 1,
            "failure": run["failure"],
            "checks": run["checks"],
        }
        for child, run in runs
    ]


def ranked(nodes: Sequence[TotNode]) -> list[TotNode]:
    """Best first: examples passed, then agreement, then shorter code, then id (stable)."""
    return sorted(nodes, key=lambda n: (-n["score"], -n["agreement"], len(n["code"]), n["id"]))


def best_score(nodes: Sequence[TotNode]) -> int:
    """The best score among `nodes` (-1 for none: the goal itself, which nothing is below)."""
    return max((n["score"] for n in nodes), default=-1)


def _restart(frontier: Frontier | None, beam: Sequence[TotNode], width: int) -> list[TotNode]:
    """The previous level's best nodes, the ones the dropped round did not expand first."""
    if frontier is None:
        return list(beam)[:width]
    tried = {n["id"] for n in beam}
    untried = [n for n in frontier["nodes"] if n["id"] not in tried]
    return [*untried, *(n for n in frontier["nodes"] if n["id"] in tried)][:width]


def prune(
    children: Sequence[TotNode],
    beam: Sequence[TotNode],
    frontiers: Sequence[Frontier],
    width: int,
    round_: int,
) -> Pruned:
    """Keep the best `width` children, or backtrack when they score below their level.

    A round with no runnable child backtracks too (when there is a level to go back to).
    """
    order = ranked(children)
    parent_best = best_score(beam)
    child_best = best_score(order)
    if beam and child_best < parent_best:
        restart = _restart(frontiers[-1] if frontiers else None, beam, width)
        level = beam[0]["level"] + 1
        backtrack: Backtrack = {
            "round": round_,
            "level": level,
            "child_best": child_best,
            "parent_best": parent_best,
            "restart": [n["id"] for n in restart],
        }
        return Pruned(restart, None, backtrack)
    if not order:
        return Pruned([], None, None)  # nothing valid from the goal: ask it again
    frontier: Frontier = {
        "level": order[0]["level"],
        "round": round_,
        "nodes": order[: 2 * width],
        "best": child_best,
    }
    return Pruned(order[:width], frontier, None)


def solves(node: TotNode | None) -> bool:
    """Whether `node` passes every example the goal states (vacuously when it states none)."""
    return node is not None and node["score"] >= node["total"]


def better(left: TotNode | None, right: TotNode | None) -> TotNode | None:
    """The better of two nodes (the reducer of the best node so far); ties keep the first."""
    if left is None or right is None:
        return left or right
    return right if right["score"] > left["score"] else left


def next_step(
    best: TotNode | None,
    beam: Sequence[TotNode],
    round_: int,
    config: TotConfig,
    room: int,
) -> Literal["expand", "conclude"]:
    """After a pruned round: stop when solved, at the depth, out of rounds or of steps.

    `room` is the steps the limits still allow; a round needs one per child, plus the steps
    that conclude and deliver (a guard that tripped passes 0).
    """
    if solves(best) or round_ >= config.max_rounds:
        return "conclude"
    if room < max(len(beam), 1) * config.branching + STEPS_RESERVE:
        return "conclude"
    depth = beam[0]["level"] if beam else 0
    return "conclude" if depth >= config.max_depth else "expand"


def expand_sends(
    goal: str, entry_point: str, beam: Sequence[TotNode], round_: int, branching: int
) -> list[Send]:
    """Round `round_`'s model calls: `branching` per beam node (or per goal), distinct seeds."""
    parents: list[TotNode | None] = list(beam) or [None]
    sends = []
    for p, parent in enumerate(parents):
        for j in range(branching):
            task: ExpandTask = {
                "goal": goal,
                "entry_point": entry_point,
                "parent": parent["id"] if parent else "",
                "parent_code": parent["code"] if parent else "",
                "failure": parent["failure"] if parent else "",
                "level": (parent["level"] if parent else 0) + 1,
                "round": round_,
                "seed": round_ * SEEDS_PER_ROUND + p * SEEDS_PER_PARENT + j + 1,
            }
            sends.append(Send("expand", task))
    return sends


def evaluate_sends(
    children: Sequence[Child], goal: str, entry_point: str, spec_checks: list[str]
) -> list[Send]:
    """One run per distinct program of the round (an identical program is one child)."""
    return [
        Send(
            "evaluate",
            EvaluateTask(
                id=c["id"],
                code=c["code"],
                entry_point=entry_point,
                goal=goal,
                spec_checks=spec_checks,
            ),
        )
        for c in children
    ]


def evaluation_key(task: EvaluateTask) -> str:
    """The evaluate node's cache key: the program's text and what it is run against.

    The program alone would do within one task; the examples (and the goal they may be read
    from) make a hit on a served graph, whose cache all tasks share, mean the same run.
    """
    checks = task.get("spec_checks") or []
    material = [task.get("code", ""), task.get("entry_point", ""), checks]
    if not checks:
        material.append(task.get("goal", ""))
    return hashlib.sha256(json.dumps(material).encode()).hexdigest()
