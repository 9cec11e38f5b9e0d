"""State of the execution-first team: candidates in a bounded pool, verdicts by execution.

It extends `TeamState` (approval, delivery, usage, the report) with what choosing by execution
needs. Candidates live in the pool by id with their votes and batch, and the pool keeps only
the two newest batches, so a checkpoint stays small however long the task runs.
"""

from __future__ import annotations

from typing import Annotated, Literal, NotRequired

from typing_extensions import TypedDict

from graphs.state import TeamState

BatchKind = Literal["sample", "repair"]
MAX_BATCHES_KEPT = 8


class PooledCandidate(TypedDict):
    """One distinct piece of code, how many replies produced it, and in which batch."""

    id: str
    code: str
    origin: str
    batch: int
    votes: int


class Verdict(TypedDict):
    """What the judge concluded from one sandboxed run of a batch (read by the router)."""

    batch: int
    winner: str
    passes_spec: bool
    spec_passed: int
    spec_total: int
    agree: bool
    """Every candidate passed the examples and behaved alike: nothing left to decide."""
    survivors: int
    """Distinct candidates that pass the examples (two or more need inputs to tell apart)."""
    question: NotRequired[dict[str, str]]
    """An input the two largest clusters disagree on, with their outputs and best members."""
    repairs: list[dict[str, str]]
    """The best failing candidates with their first failure, verbatim."""
    cluster_sizes: list[int]
    untyped: NotRequired[int]
    """The winner's outputs on the compared inputs that raised or are not of the type the
    goal's examples return (0 when the examples show no type): a sign of a wrong program."""


def merge_pool(
    left: dict[str, PooledCandidate] | None, right: dict[str, PooledCandidate] | None
) -> dict[str, PooledCandidate]:
    """Add a batch's candidates (repeats add votes) and keep only the two newest batches."""
    merged = dict(left or {})
    for cid, candidate in (right or {}).items():
        known = merged.get(cid)
        if known is not None and known["batch"] == candidate["batch"]:
            merged[cid] = {**known, "votes": known["votes"] + candidate["votes"]}
        else:
            merged[cid] = candidate
    newest = max((c["batch"] for c in merged.values()), default=0)
    return {cid: c for cid, c in merged.items() if c["batch"] >= newest - 1}


def newest(left: int | None, right: int | None) -> int:
    """The larger batch number (parallel samples all report the same one)."""
    return max(left or 0, right or 0)


def append_batches[T](left: list[T] | None, right: list[T] | None) -> list[T]:
    """Items about batches (their kinds, which were widened), newest last, bounded."""
    return [*(left or []), *(right or [])][-MAX_BATCHES_KEPT:]


def union_asked(left: list[str] | None, right: list[str] | None) -> list[str]:
    """Questions already put to the reviewer (never asked twice)."""
    return sorted({*(left or []), *(right or [])})


class SelectionState(TeamState):
    """The team's shared state, plus the candidate pool and the judge's verdict."""

    pool: Annotated[dict[str, PooledCandidate], merge_pool]
    batch: Annotated[int, newest]
    """The batch being drawn or judged: 1 for the first sampling round."""
    batches: Annotated[list[str], append_batches]
    """Kinds of the batches judged so far ("sample", "repair"), newest last."""
    widened: Annotated[list[int], append_batches]
    """Batches that drew extra samples because the examples left no clear winner."""
    inputs: NotRequired[list[str]]
    """Inputs the tester proposed; outputs on them are compared, never checked."""
    verdict: NotRequired[Verdict]
    asked: Annotated[list[str], union_asked]
