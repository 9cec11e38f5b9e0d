"""The judge of the execution-first team: one sandboxed run per batch decides.

Every candidate of the batch (and the previous winner) runs on the goal's own examples and the
tester's inputs in one `run_candidates` call through the gateway — ledgered, so a resumed task
replays a completed run instead of running it again. Candidates failing an example are out; the
rest are clustered by their outputs and the largest cluster wins (`nodes.selection`). The
verdict tells the router whether to deliver, ask the reviewer one question, repair or sample.
"""

from __future__ import annotations

import hashlib
import json
from typing import TypedDict

from langchain_core.messages import AIMessage
from langgraph.runtime import Runtime
from pydantic import JsonValue

from graphs.context import TeamContext
from graphs.deps import Node, TeamDeps
from graphs.selection_state import PooledCandidate, SelectionState, Verdict
from graphs.state import CheckResult, TestRun, failed_checks
from nodes.candidates import MAX_CANDIDATES, SOLUTION, Candidate, run_args
from nodes.mutation import judged_inputs
from nodes.search_support import run_through_gateway
from nodes.selection import (
    Selection,
    all_agree,
    distinguishing_input,
    needs_question,
    repair_targets,
    select,
    shape_of,
)
from tools.builtin.run_candidates import RunCandidatesResult
from tools.checks import Check, decode, encode, entry_point_of, extract_spec_checks


def batch_pool(state: SelectionState) -> list[PooledCandidate]:
    """The newest batch, most voted first, then the previous winner (at most 8 in all)."""
    pool = state.get("pool", {})
    batch = state.get("batch", 0)
    newest = sorted(
        (c for c in pool.values() if c["batch"] == batch),
        key=lambda c: (c["origin"] != "greedy", -c["votes"], c["id"]),
    )
    verdict = state.get("verdict")
    chosen = newest[:MAX_CANDIDATES]
    previous = pool.get(verdict["winner"]) if verdict else None
    if previous is not None and all(c["id"] != previous["id"] for c in chosen):
        chosen = [*chosen[: MAX_CANDIDATES - 1], previous]
    return chosen


def _question(selection: Selection) -> dict[str, str] | None:
    if not needs_question(selection.clusters):
        return None
    first, second = selection.clusters[0], selection.clusters[1]
    distinction = distinguishing_input(first, second)
    if distinction is None:
        return None
    return {
        "call": distinction.call,
        "output_a": distinction.output_a,
        "output_b": distinction.output_b,
        "a": first.best,
        "b": second.best,
    }


def untyped_outputs(result: RunCandidatesResult, selection: Selection) -> int:
    """How many of the winning cluster's outputs are not typed like the examples' values."""
    if not selection.clusters or not any(shape_of(c.expected) for c in result.checks):
        return 0
    best = selection.clusters[0]
    return len(best.outputs) - best.typed


def verdict_of(
    result: RunCandidatesResult, batch: int, votes: dict[str, int]
) -> tuple[Verdict, Selection]:
    """What the router needs from one run: winner, examples passed, agreement, question."""
    selection = select(result, weights=votes)
    winner = next((c for c in result.candidates if c.id == selection.winner), None)
    verdict: Verdict = {
        "batch": batch,
        "winner": selection.winner or "",
        "passes_spec": selection.passes_spec,
        "spec_passed": winner.spec_passed if winner else 0,
        "spec_total": selection.spec_total,
        "agree": all_agree(result),
        "survivors": len({m for c in selection.clusters for m in c.members}),
        "repairs": [
            {"candidate": t.candidate, "failure": t.describe()} for t in repair_targets(result)
        ],
        "cluster_sizes": [c.size for c in selection.clusters],
        "untyped": untyped_outputs(result, selection),
    }
    if (question := _question(selection)) is not None:
        verdict["question"] = question
    return verdict, selection


def test_run_of(
    result: RunCandidatesResult, verdict: Verdict, run_id: str, iteration: int, votes: int
) -> TestRun:
    """The winner's run in the report's terms: examples passed, agreement as team tests."""
    winner = next((c for c in result.candidates if c.id == verdict["winner"]), None)
    checks: list[CheckResult] = [
        {
            "name": f"{check.call} == {check.expected}",
            "source": "spec",
            "passed": outcome.passed,
            "error": outcome.error[:300],
        }
        for check, outcome in zip(result.checks, winner.checks if winner else [], strict=False)
    ]
    agreeing = verdict["cluster_sizes"][0] if verdict["cluster_sizes"] else 0
    return {
        "run_id": run_id,
        "iteration": iteration,
        "code_hash": verdict["winner"],
        "spec_passed": verdict["spec_passed"],
        "spec_total": verdict["spec_total"],
        "model_passed": agreeing,
        "model_total": votes,
        "checks": checks,
        "error": (winner.load_error if winner else "") or result.error,
    }


class _GroundTruth(TypedDict, total=False):
    """The goal's examples, and the function they call when the code had to name it."""

    entry_point: str
    spec_checks: list[str]


class _Attempt(TypedDict, total=False):
    """What judging a batch adds to the counters (`steps` always, the rest for a new batch)."""

    iteration: int
    steps: int
    batches: list[str]


def _ground_truth(state: SelectionState, chosen: list[PooledCandidate]) -> _GroundTruth:
    """The goal's examples; when the goal does not name the function, the code does."""
    if "spec_checks" in state:
        return {"spec_checks": state["spec_checks"]}
    code = chosen[0]["code"] if chosen else ""
    entry = state.get("entry_point") or entry_point_of(state["goal"], code)
    if not entry:
        return {}
    found = [encode(check) for check in extract_spec_checks(state["goal"], entry)]
    return {"entry_point": entry, "spec_checks": found}


def _attempt(state: SelectionState, chosen: list[PooledCandidate], batch: int) -> _Attempt:
    """A new batch is one more attempt; judging the same batch again with inputs is not."""
    previous = state.get("verdict")
    if previous is not None and previous["batch"] == batch:
        return {"steps": 1}
    kind = "repair" if any(c["origin"] == "repair" for c in chosen) else "sample"
    return {"iteration": 1, "steps": 1, "batches": [kind]}


def _inputs(
    state: SelectionState, checks: list[Check], found: _GroundTruth, mutated: int
) -> list[str]:
    """The tester's inputs, then inputs mutated from the examples (`judged_inputs`)."""
    entry = state.get("entry_point") or found.get("entry_point", "")
    return judged_inputs(state.get("inputs", []), checks, entry, mutated)


def _run_request(
    state: SelectionState, chosen: list[PooledCandidate], found: _GroundTruth, mutated: int
) -> tuple[dict[str, JsonValue], str]:
    """The `run_candidates` arguments and their digest, which names the call in the ledger.

    The same batch, examples and inputs give the same call id, so a resumed task replays the
    run the ledger recorded instead of running it again.
    """
    checks = [decode(item, "spec") for item in found.get("spec_checks", [])]
    candidates: list[Candidate] = [
        {"id": c["id"], "code": c["code"], "origin": c["origin"]}  # type: ignore[typeddict-item]
        for c in chosen
    ]
    args = run_args(candidates, checks, _inputs(state, checks, found, mutated))
    args_json: dict[str, JsonValue] = args.model_dump(mode="json")
    digest = hashlib.sha256(json.dumps(args_json, sort_keys=True).encode()).hexdigest()
    return args_json, digest


def _judged(
    state: SelectionState,
    chosen: list[PooledCandidate],
    result: RunCandidatesResult,
    run_id: str,
    iteration: int,
) -> tuple[dict[str, object], Verdict, TestRun]:
    """The state update a completed run makes: verdict, test run, note and the winner's code."""
    batch = state.get("batch", 0)
    votes = {c["id"]: c["votes"] for c in chosen}
    verdict, selection = verdict_of(result, batch, votes)
    run = test_run_of(result, verdict, run_id, iteration, sum(votes.values()))
    note = (
        f"judge: batch {batch}: {len(chosen)} candidates, the winner passes "
        f"{verdict['spec_passed']}/{verdict['spec_total']} of the goal's examples; "
        f"clusters {verdict['cluster_sizes']}"
    )
    update: dict[str, object] = {
        "verdict": verdict,
        "test_runs": [run],
        "messages": [AIMessage(note, name="tester")],
    }
    if selection.winner:
        files = {SOLUTION: state["pool"][selection.winner]["code"]}
        score = (verdict["spec_passed"], verdict["cluster_sizes"][0])
        update |= {
            "files": files,
            "best": {"files": files, "iteration": iteration, "score": score},
        }
    return update, verdict, run


def _noted(update: dict[str, object], note: str) -> dict[str, object]:
    return {**update, "messages": [AIMessage(note, name="tester")]}


def make_judge(deps: TeamDeps) -> Node[SelectionState]:
    """The node that runs a batch and chooses its winner."""

    async def judge(state: SelectionState, *, runtime: Runtime[TeamContext]) -> dict[str, object]:
        """Run the batch once in the sandbox; filter, cluster, choose; say what is left."""
        ctx = deps.run_context(runtime.context)
        chosen = batch_pool(state)
        batch = state.get("batch", 0)
        attempt = _attempt(state, chosen, batch)
        iteration = state.get("iteration", 0) + attempt.get("iteration", 0)
        update: dict[str, object] = {**attempt}
        if not chosen:
            return _noted(update, "judge: no candidate to run (no valid model output)")
        found = _ground_truth(state, chosen)
        update |= found
        args_json, digest = _run_request(state, chosen, found, deps.sampling.mutated)
        runtime.stream_writer({"role": "tester", "event": "running", "candidates": len(chosen)})
        observation = await run_through_gateway(deps, ctx, args_json, f"candidates-{digest[:16]}")
        if not observation.ok or observation.result is None:
            problem = observation.error.message if observation.error else "the run failed"
            return _noted(update, f"judge: the sandboxed run failed ({problem[:200]})")
        result = RunCandidatesResult.model_validate(observation.result)
        judged, verdict, run = _judged(state, chosen, result, digest[:16], iteration)
        runtime.stream_writer(
            {
                "role": "tester",
                "event": "result",
                "spec": [verdict["spec_passed"], verdict["spec_total"]],
                "clusters": verdict["cluster_sizes"],
                "failing": [check["name"] for check in failed_checks(run, 3)],
                "replayed": observation.replayed,
            }
        )
        return update | judged

    return judge
