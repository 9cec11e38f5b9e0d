"""State of the Tree of Thoughts architecture: the round's children, the beam, the history.

It extends `TeamState` (approval, delivery, usage, the report) with the search. Every channel
that grows is bounded: `children` holds only the newest round, `evaluations` the newest runs,
`frontiers` the last few levels and `backtracks` the newest records, so a checkpoint stays
small however long the search runs. The record types live with the pure search logic
(`nodes/tot_search.py`), which the nodes read and the tests table-test.
"""

from __future__ import annotations

from typing import Annotated, NotRequired

from graphs.state import TeamState
from nodes.tot_search import (
    MAX_BACKTRACKS_KEPT,
    MAX_FRONTIERS,
    Backtrack,
    Child,
    Evaluation,
    Frontier,
    TotNode,
    better,
)

MAX_EVALUATIONS_KEPT = 64


def newest_round(left: int | None, right: int | None) -> int:
    """The larger round number (every child of a round reports the same one)."""
    return max(left or 0, right or 0)


def round_children(
    left: dict[str, Child] | None, right: dict[str, Child] | None
) -> dict[str, Child]:
    """Add a round's children by id (the same program twice is one child); keep the newest round."""
    merged = {**(left or {}), **(right or {})}
    newest = max((c["round"] for c in merged.values()), default=0)
    return {cid: c for cid, c in merged.items() if c["round"] == newest}


def recent_evaluations(
    left: dict[str, Evaluation] | None, right: dict[str, Evaluation] | None
) -> dict[str, Evaluation]:
    """Runs by program id, newest last, bounded (a round reads only its own children's)."""
    merged = {k: v for k, v in (left or {}).items() if k not in (right or {})}
    merged.update(right or {})
    return dict(list(merged.items())[-MAX_EVALUATIONS_KEPT:])


def push_frontiers(left: list[Frontier] | None, right: list[Frontier] | None) -> list[Frontier]:
    """The levels kept, oldest first, at most `MAX_FRONTIERS`."""
    return [*(left or []), *(right or [])][-MAX_FRONTIERS:]


def append_backtracks(
    left: list[Backtrack] | None, right: list[Backtrack] | None
) -> list[Backtrack]:
    """Every backtrack of the search, oldest first, bounded."""
    return [*(left or []), *(right or [])][-MAX_BACKTRACKS_KEPT:]


def best_node(left: TotNode | None, right: TotNode | None) -> TotNode | None:
    """The best node found so far (a later one must score higher to replace it)."""
    return better(left, right)


class TotState(TeamState):
    """The team's shared state, plus the tree search."""

    round: Annotated[int, newest_round]
    """The expansion round being run or pruned: 1 for the goal's fresh programs."""
    children: Annotated[dict[str, Child], round_children]
    evaluations: Annotated[dict[str, Evaluation], recent_evaluations]
    beam: NotRequired[list[TotNode]]
    """The nodes the next round expands (written by `prune` only)."""
    frontiers: Annotated[list[Frontier], push_frontiers]
    backtracks: Annotated[list[Backtrack], append_backtracks]
    found: Annotated[TotNode | None, best_node]
    """The best node of the whole search: what is delivered."""
