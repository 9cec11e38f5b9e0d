"""Selection rules scored on recorded candidates: the ablations of the execution-first team.

A `selection` benchmark run records every candidate it judged (`eval.pools`). Here each task's
first batch — the greedy answer and the sampled ones — runs once more in the sandbox on the
goal's examples and the tester's inputs (one `run_candidates` run per task, no model call), and
each rule below picks a winner from that same run. A rule scores a task when its winner passes
the hidden tests. So "N=1 vs N=4", "with and without the tester's inputs" and "how much the
greedy answer weighs" are compared on identical candidates, and `oracle` says how many tasks
any candidate could have solved.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from eval.pools import PoolRecord, RecordedCandidate
from graphs.deps import Sampling
from nodes.candidates import Candidate, run_args
from nodes.mutation import judged_inputs
from nodes.selection import most_agreeing, select
from tools.builtin.run_candidates import RunCandidatesResult, run_candidates
from tools.checks import decode
from tools.registry import ToolContext
from tools.sandbox import Sandbox
from tools.workspaces import MemoryWorkspace

__all__ = ["RULES", "Rule", "first_batch", "rerun", "score"]


type Inputs = Literal["tester", "mutated", "both", "none"]


@dataclass(frozen=True)
class Rule:
    """One way to choose: how many samples it sees, inputs or not, the greedy answer's weight."""

    name: str
    samples: int | None
    """Sampled replies taken in arrival order (None: all of the batch)."""
    inputs: Inputs = "tester"
    """Which inputs outputs are compared on: the tester's, mutated examples, both or none."""
    greedy_weight: int = 1
    oracle: bool = False
    agreement: bool = False
    """Pick the candidate agreeing most input by input (`most_agreeing`), not the top cluster."""
    reread: bool = False
    """Judge on the examples the current extractor reads from the goal, not the recorded ones."""


RULES = (
    Rule("greedy only (N=0)", samples=0),
    Rule("N=1", samples=1),
    Rule("N=2", samples=2),
    Rule("N=4 (team)", samples=None),
    Rule("N=4, no tester inputs", samples=None, inputs="none"),
    Rule("N=4, mutated examples instead of tester inputs", samples=None, inputs="mutated"),
    Rule("N=4, tester inputs and mutated examples", samples=None, inputs="both"),
    Rule("N=4, most agreeing on mutated examples", samples=None, inputs="mutated", agreement=True),
    Rule("N=4, greedy weighs 2", samples=None, greedy_weight=2),
    Rule("N=4, greedy weighs 3", samples=None, greedy_weight=3),
    Rule("N=4, most agreeing input by input", samples=None, agreement=True),
    Rule("N=4, most agreeing, greedy weighs 2", samples=None, agreement=True, greedy_weight=2),
    Rule("N=4, examples re-read, tester + mutated", samples=None, inputs="both", reread=True),
    Rule("N=4, examples re-read, mutated only", samples=None, inputs="mutated", reread=True),
    Rule("N=1, examples re-read, mutated only", samples=1, inputs="mutated", reread=True),
    Rule("N=2, examples re-read, mutated only", samples=2, inputs="mutated", reread=True),
    Rule("any candidate passes (oracle)", samples=None, oracle=True),
)


def first_batch(entry: PoolRecord) -> list[RecordedCandidate]:
    """The candidates of the first sampling round (greedy first)."""
    return [c for c in entry["candidates"] if c["batch"] == 1]


async def rerun(
    entry: PoolRecord, sandbox: Sandbox, spec_checks: list[str] | None = None
) -> RunCandidatesResult:
    """The first batch run again on the recorded examples (or `spec_checks`) and inputs."""
    candidates: list[Candidate] = [
        {"id": c["id"], "code": c["code"], "origin": c["origin"]}  # type: ignore[typeddict-item]
        for c in first_batch(entry)
    ]
    recorded = entry["spec_checks"] if spec_checks is None else spec_checks
    checks = [decode(item, "spec") for item in recorded]
    inputs = judged_inputs(entry["inputs"], checks, entry["entry_point"], Sampling().mutated)
    args = run_args(candidates, checks, inputs)
    ctx = ToolContext(
        workspace=MemoryWorkspace(), tenant_id="bench", task_id=entry["task_id"], sandbox=sandbox
    )
    return await run_candidates(args, ctx)


def _votes(entry: PoolRecord, samples: int | None) -> dict[str, int]:
    """Votes per candidate id from the greedy reply and the first `samples` sampled ones."""
    batch = {c["id"]: c for c in first_batch(entry)}
    greedy = [c["id"] for c in batch.values() if c["origin"] == "greedy"]
    sampled = [cid for cid in entry["replies"] if cid in batch and cid not in greedy[:1]]
    # A sample identical to the greedy answer arrives under the greedy id: count it as a reply.
    extra = sum(c["votes"] for c in batch.values() if c["origin"] == "greedy") - 1
    sampled += greedy[:1] * max(extra, 0)
    taken = sampled if samples is None else sampled[:samples]
    votes: dict[str, int] = dict.fromkeys(greedy[:1], 1)
    for cid in taken:
        votes[cid] = votes.get(cid, 0) + 1
    return votes


def _restricted(
    result: RunCandidatesResult, entry: PoolRecord, keep: Mapping[str, int], inputs: Inputs
) -> RunCandidatesResult:
    """The run as if only `keep` had been drawn and only the chosen inputs had been run."""
    tester = len(entry["inputs"])
    wanted = {
        "tester": range(tester),
        "mutated": range(tester, len(result.inputs)),
        "both": range(len(result.inputs)),
        "none": range(0),
    }[inputs]
    candidates = [
        c.model_copy(update={"outputs": [c.outputs[i] for i in wanted if i < len(c.outputs)]})
        for c in result.candidates
        if c.id in keep
    ]
    chosen = [result.inputs[i] for i in wanted]
    return result.model_copy(update={"candidates": candidates, "inputs": chosen})


def score(entry: PoolRecord, result: RunCandidatesResult, rule: Rule) -> bool:
    """Whether the candidate `rule` picks from `result` passes the task's hidden tests."""
    passed = {c["id"]: c["hidden_passed"] for c in first_batch(entry)}
    votes = _votes(entry, rule.samples)
    if rule.oracle:
        return any(passed.get(cid, False) for cid in votes)
    weights = dict(votes)
    for c in first_batch(entry):
        if c["origin"] == "greedy" and c["id"] in weights:
            weights[c["id"]] += rule.greedy_weight - 1
    run = _restricted(result, entry, votes, rule.inputs)
    winner = most_agreeing(run, weights) if rule.agreement else select(run, weights=weights).winner
    return bool(winner and passed.get(winner, False))
