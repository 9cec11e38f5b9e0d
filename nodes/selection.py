"""Choosing among executed candidates (pure functions over a run_candidates result).

What a small model's candidates are worth is decided by running them, not by asking the model:

1. **Ground truth filters.** The goal's own examples are right; a candidate failing any of them
   is dropped. When none passes them all, only the candidates passing the most stay.
2. **Agreement chooses.** The survivors are clustered by their outputs on the tester's proposed
   inputs (CodeT, AlphaCode's clustering, MBR-exec): programs that behave alike on every input
   are one cluster, and the largest cluster wins. An exception is an output too, compared by its
   type (two programs rejecting an input with different messages still agree).
3. **A question only when close.** When the two largest clusters are about as large, the
   reviewer is asked one concrete question: for the first input where they differ, which output
   does the specification require (`distinguishing_input`).
4. **Repair from facts.** Failing candidates are repaired with the failing call, the expected
   and actual values and the error, verbatim (`repair_targets`).

Everything is deterministic: ties are broken by spec checks passed, then by how many outputs
have the type the goal's examples show (`shape_of`), then a greedy answer, then shorter code,
then the order the candidates were run in.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel

from tools.builtin.run_candidates import CandidateResult, RunCandidatesResult

__all__ = [
    "Cluster",
    "Distinction",
    "RepairTarget",
    "ReviewerAnswer",
    "Selection",
    "all_agree",
    "choose",
    "clusters_of",
    "distinguishing_input",
    "most_agreeing",
    "needs_question",
    "repair_targets",
    "select",
    "shape_of",
    "signature_of",
    "typed_outputs",
]


@dataclass(frozen=True)
class Cluster:
    """Candidates with the same behaviour on every proposed input, best member first."""

    members: tuple[str, ...]
    size: int
    """Members weighted by their votes (replies that produced the same code)."""
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    """The first member's output on each input, as the runner printed it."""
    spec_passed: int
    typed: int
    """Outputs of the same type as the goal's examples' expected values (see `shape_of`)."""
    greedy: bool
    shortest: int
    first: int
    """Position of the earliest member in the run (the last tie-break)."""

    @property
    def best(self) -> str:
        """The id of the member to deliver."""
        return self.members[0]


@dataclass(frozen=True)
class Selection:
    """The outcome of one round: the winner, the ranked clusters and what was dropped."""

    winner: str | None
    clusters: tuple[Cluster, ...]
    spec_total: int
    passes_spec: bool
    """The winner passes every spec check (vacuously when the goal states none)."""
    dropped: tuple[str, ...]
    """Candidates that failed to load or passed fewer spec checks than the survivors."""


@dataclass(frozen=True)
class Distinction:
    """An input on which two clusters disagree, for the reviewer's one question."""

    call: str
    output_a: str
    output_b: str

    def describe(self) -> str:
        """The question's facts as the reviewer prompt shows them."""
        return f"Input: {self.call}\nOutput A: {self.output_a}\nOutput B: {self.output_b}"


@dataclass(frozen=True)
class RepairTarget:
    """A failing candidate and its first failure, verbatim, for a repair prompt."""

    candidate: str
    call: str
    expected: str
    actual: str
    error: str

    def describe(self) -> str:
        """The failure as the repair prompt shows it."""
        if not self.call:
            return f"The code does not load:\n{self.error}"
        return (
            f"Failing call: {self.call}\nExpected: {self.expected}\nActual: {self.actual}\n"
            f"Error:\n{self.error}"
        )


class ReviewerAnswer(BaseModel):
    """The reviewer's answer (reviewer@3) to a `Distinction`."""

    answer: Literal["A", "B", "neither"]


def signature_of(output: str) -> str:
    """What clustering compares: the output, or only the type of a raised exception."""
    if output.startswith("raise "):
        return output.partition(":")[0]
    return output


def shape_of(value: str) -> str | None:
    """The type of a printed value, containers with their element types: `list[int]`.

    None when the text is not a literal (an exception, an object's repr). Two right programs
    return values of the type the goal's examples show; `[inf, -1]` where every example returns
    a list of ints, or an exception where none raises, is a sign of a wrong one.
    """
    try:
        parsed = ast.literal_eval(value)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None
    return _shape(parsed)


def _shape(value: object) -> str:
    if isinstance(value, list | tuple | set | frozenset):
        inner = sorted({_shape(item) for item in value})
        return f"{type(value).__name__}[{'|'.join(inner)}]"
    if isinstance(value, dict):
        keys = sorted({_shape(k) for k in value})
        items = sorted({_shape(v) for v in value.values()})
        return f"dict[{'|'.join(keys)}:{'|'.join(items)}]"
    return type(value).__name__


def typed_outputs(outputs: Sequence[str], shapes: set[str | None]) -> int:
    """How many outputs have one of the `shapes` (0 when the goal shows no typed example).

    An empty container matches any container of its kind: `[]` is a list of anything.
    """
    if not shapes:
        return 0
    kinds = {shape.split("[")[0] for shape in shapes if shape}
    count = 0
    for output in outputs:
        shape = shape_of(output)
        if shape in shapes or (shape is not None and shape.endswith("[]") and shape[:-2] in kinds):
            count += 1
    return count


def _weight(candidate: CandidateResult, weights: Mapping[str, int] | None) -> int:
    return max(1, (weights or {}).get(candidate.id, 1))


def _rank(candidate: CandidateResult, index: int) -> tuple[int, bool, int, int]:
    """Best first: more spec checks passed, greedy, shorter code, run order."""
    return (-candidate.spec_passed, candidate.origin != "greedy", candidate.size, index)


def _survivors(result: RunCandidatesResult) -> list[tuple[int, CandidateResult]]:
    loaded = [(i, c) for i, c in enumerate(result.candidates) if not c.load_error]
    if not loaded:
        return []
    most = max(c.spec_passed for _, c in loaded)
    return [(i, c) for i, c in loaded if c.spec_passed == most]


def clusters_of(
    result: RunCandidatesResult,
    members: Sequence[tuple[int, CandidateResult]],
    weights: Mapping[str, int] | None = None,
) -> tuple[Cluster, ...]:
    """Group (position, candidate) pairs by output signature; largest cluster first."""
    groups: dict[tuple[str, ...], list[tuple[int, CandidateResult]]] = {}
    shapes = {shape_of(check.expected) for check in result.checks} - {None}
    for index, candidate in members:
        key = tuple(signature_of(o) for o in candidate.outputs)
        groups.setdefault(key, []).append((index, candidate))
    clusters = []
    for group in groups.values():
        group.sort(key=lambda pair: _rank(pair[1], pair[0]))
        lead = group[0][1]
        clusters.append(
            Cluster(
                members=tuple(c.id for _, c in group),
                size=sum(_weight(c, weights) for _, c in group),
                inputs=tuple(result.inputs),
                outputs=tuple(lead.outputs),
                spec_passed=max(c.spec_passed for _, c in group),
                typed=typed_outputs(lead.outputs, shapes),
                greedy=any(c.origin == "greedy" for _, c in group),
                shortest=min(c.size for _, c in group),
                first=min(i for i, _ in group),
            )
        )
    clusters.sort(
        key=lambda c: (-c.size, -c.spec_passed, -c.typed, not c.greedy, c.shortest, c.first)
    )
    return tuple(clusters)


def select(result: RunCandidatesResult, weights: Mapping[str, int] | None = None) -> Selection:
    """Filter by the spec checks, cluster the survivors, and pick the largest cluster's best."""
    survivors = _survivors(result)
    clusters = clusters_of(result, survivors, weights)
    kept = {c.id for _, c in survivors}
    spec_total = len(result.checks)
    winner = clusters[0].best if clusters else None
    return Selection(
        winner=winner,
        clusters=clusters,
        spec_total=spec_total,
        passes_spec=bool(clusters) and clusters[0].spec_passed == spec_total,
        dropped=tuple(c.id for c in result.candidates if c.id not in kept),
    )


def most_agreeing(
    result: RunCandidatesResult, weights: Mapping[str, int] | None = None
) -> str | None:
    """The survivor agreeing most with the others, input by input (MBR-exec).

    Unlike whole-signature clusters, two right programs that differ on one odd input (an
    invalid argument the goal never mentions) still support each other on every other input.
    """
    survivors = _survivors(result)
    if not survivors:
        return None

    def support(candidate: CandidateResult) -> int:
        mine = [signature_of(o) for o in candidate.outputs]
        return sum(
            _weight(other, weights)
            * sum(a == signature_of(b) for a, b in zip(mine, other.outputs, strict=False))
            for _, other in survivors
        )

    best = min(survivors, key=lambda pair: (-support(pair[1]), *_rank(pair[1], pair[0])))
    return best[1].id


def needs_question(clusters: Sequence[Cluster], margin: int = 1) -> bool:
    """Whether the two largest clusters are too close to call (sizes within `margin`)."""
    return len(clusters) >= 2 and clusters[0].size - clusters[1].size <= margin


def distinguishing_input(c1: Cluster, c2: Cluster) -> Distinction | None:
    """The first proposed input where the two clusters' outputs differ (None if they do not)."""
    for call, a, b in zip(c1.inputs, c1.outputs, c2.outputs, strict=False):
        if signature_of(a) != signature_of(b):
            return Distinction(call=call, output_a=a, output_b=b)
    return None


def choose(c1: Cluster, c2: Cluster, answer: ReviewerAnswer) -> Cluster | None:
    """The cluster the reviewer's answer picks: A is `c1`, B is `c2`; None for 'neither'."""
    return {"A": c1, "B": c2}.get(answer.answer)


def all_agree(result: RunCandidatesResult, min_candidates: int = 2) -> bool:
    """Every candidate loaded, passed every spec check and behaved alike: deliver, no review.

    Agreement needs evidence: at least `min_candidates` candidates and at least one spec check
    or proposed input to agree on.
    """
    candidates = result.candidates
    if len(candidates) < min_candidates or not (result.checks or result.inputs):
        return False
    total = len(result.checks)
    if any(c.load_error or c.spec_passed != total for c in candidates):
        return False
    return len(clusters_of(result, list(enumerate(candidates)))) == 1


def _first_failure(result: RunCandidatesResult, candidate: CandidateResult) -> RepairTarget:
    if candidate.load_error:
        return RepairTarget(candidate.id, "", "", "", candidate.load_error)
    for index, check in enumerate(result.checks):
        outcome = candidate.checks[index] if index < len(candidate.checks) else None
        if outcome is None or not outcome.passed:
            actual, error = (outcome.actual, outcome.error) if outcome else ("", "not run")
            return RepairTarget(candidate.id, check.call, check.expected, actual, error)
    return RepairTarget(candidate.id, "", "", "", "no failure recorded")


def repair_targets(result: RunCandidatesResult, k: int = 2) -> list[RepairTarget]:
    """The `k` best failing candidates with their first failure, distinct failures first.

    Best: more spec checks passed, loaded before not loaded, greedy, shorter code, run order.
    Two candidates failing the same call with the same actual value need one repair less than
    two different failures, so such repeats only fill places left over.
    """
    total = len(result.checks)
    failing = [
        (i, c) for i, c in enumerate(result.candidates) if c.load_error or c.spec_passed < total
    ]
    failing.sort(key=lambda p: (-p[1].spec_passed, bool(p[1].load_error), *_rank(p[1], p[0])[1:]))
    targets = [_first_failure(result, c) for _, c in failing]
    distinct: list[RepairTarget] = []
    repeats: list[RepairTarget] = []
    seen: set[tuple[str, str]] = set()
    for target in targets:
        key = (target.call, target.actual if target.call else target.error)
        (repeats if key in seen else distinct).append(target)
        seen.add(key)
    return (distinct + repeats)[: max(k, 0)]
