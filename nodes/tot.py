"""The Tree of Thoughts nodes: expand a node into a program, run it, prune the round.

`expand` is one model call (a `Send` per child): a fresh program from the goal, or a revision
of its parent shown with the parent's first failing check verbatim, sampled at a temperature
above zero with its own seed. `evaluate` runs one program on the goal's own examples (and on
inputs mutated from them, for the agreement tie-break) through the gateway's `run_candidates`,
the judge's runner; its graph node has a `CachePolicy` keyed by the program's text, so a
program the model proposes again is never run twice. `prune` keeps the best children or
backtracks (`nodes/tot_search.py`), `conclude` settles what is delivered and why.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from langchain_core.messages import AIMessage
from langgraph.runtime import Runtime

from graphs.context import TeamContext
from graphs.deps import Limits, ModelOutputError, Node, TeamDeps
from graphs.state import CheckResult, TestRun
from nodes.candidates import SOLUTION, Candidate, Rejected, make_candidate, run_args
from nodes.mutation import judged_inputs
from nodes.search_support import policy_answer, run_through_gateway
from nodes.selection import repair_targets
from nodes.team_prompt import messages
from nodes.tot_search import (
    Child,
    EvaluateTask,
    Evaluation,
    ExpandTask,
    TotConfig,
    TotNode,
    TotView,
    prune,
    ranked,
    scored,
    solves,
)
from tools.builtin.run_candidates import RunCandidatesResult
from tools.checks import Check, decode, entry_point_of, extract_spec_checks

PROMPT = "tot_expand"
PARENT_TITLE = "A previous attempt, to revise"
FAILURE_TITLE = "What happened when it ran"
MIN_TEMPERATURE = 0.3
"""Children of one parent must differ: they are never decoded greedily."""

State = TotView


def _sections(task: ExpandTask) -> list[str]:
    """Nothing for a fresh program; the parent's code and its failure for a revision."""
    if not task["parent"]:
        return []
    code = f"{PARENT_TITLE}:\n```python\n{task['parent_code']}```"
    failure = task["failure"] or "It passes the goal's examples; make it right for every input."
    return [code, f"{FAILURE_TITLE}:\n{failure}"]


def make_expand(deps: TeamDeps) -> Node[ExpandTask]:
    """The node that proposes one child program."""

    async def expand(state: ExpandTask, *, runtime: Runtime[TeamContext]) -> dict[str, Any]:
        """Ask for one program (fresh or revised) at its own seed; keep it if it parses."""
        task = state
        ctx = deps.run_context(runtime.context)
        model = await deps.model(ctx)
        system, user = messages(PROMPT, task["goal"], _sections(task))
        temperature = max(deps.sampling.temperature, MIN_TEMPERATURE)
        update: dict[str, Any] = {"round": task["round"], "steps": 1}
        try:
            text, usage = await deps.ask_text(
                model, system, user, temperature=temperature, seed=task["seed"]
            )
        except ModelOutputError as exc:  # refused by the budget: no child; the guard stops
            runtime.stream_writer({"role": "coder", "event": "failed", "error": str(exc)[:300]})
            return update | {"usage": exc.usage}
        made = make_candidate(text, "sample", task["entry_point"] or None)
        event = "rejected" if isinstance(made, Rejected) else "wrote"
        runtime.stream_writer({"role": "coder", "event": event, "level": task["level"]})
        if isinstance(made, Rejected):
            return update | {"usage": usage}
        child: Child = {
            "id": made["id"],
            "code": made["code"],
            "parent": task["parent"],
            "level": task["level"],
            "round": task["round"],
            "seed": task["seed"],
        }
        return update | {"usage": usage, "children": {made["id"]: child}}

    return expand


def _checks(task: EvaluateTask) -> tuple[str, list[Check]]:
    """The function and the goal's examples; when the goal does not name it, the code does."""
    entry = task["entry_point"] or entry_point_of(task["goal"], task["code"]) or ""
    if task["spec_checks"]:
        return entry, [decode(item, "spec") for item in task["spec_checks"]]
    return entry, list(extract_spec_checks(task["goal"], entry)) if entry else []


def evaluation_of(result: RunCandidatesResult) -> Evaluation:
    """One candidate's run as the search scores it: passed, outputs, first failure verbatim."""
    run = result.candidates[0]
    targets = repair_targets(result, 1)
    checks: list[CheckResult] = [
        {
            "name": f"{check.call} == {check.expected}",
            "source": "spec",
            "passed": outcome.passed,
            "error": outcome.error[:300],
        }
        for check, outcome in zip(result.checks, run.checks, strict=False)
    ]
    return {
        "passed": run.spec_passed,
        "total": len(result.checks),
        "outputs": list(run.outputs),
        "failure": targets[0].describe() if targets else "",
        "checks": checks,
    }


def make_evaluate(deps: TeamDeps) -> Node[EvaluateTask]:
    """The node that runs one program in the sandbox (cached by the graph, see `graphs/tot.py`)."""

    async def evaluate(state: EvaluateTask, *, runtime: Runtime[TeamContext]) -> dict[str, Any]:
        """Run the program on the goal's examples and mutated inputs, through the gateway."""
        task = state
        ctx = deps.run_context(runtime.context)
        entry, checks = _checks(task)
        inputs = judged_inputs([], checks, entry, deps.sampling.mutated)
        candidate: Candidate = {"id": task["id"], "code": task["code"], "origin": "sample"}
        args = run_args([candidate], checks, inputs).model_dump(mode="json")
        digest = hashlib.sha256(json.dumps(args, sort_keys=True).encode()).hexdigest()
        runtime.stream_writer({"role": "tester", "event": "running", "candidates": 1})
        observation = await run_through_gateway(deps, ctx, args, f"tot-{digest[:16]}")
        if observation.ok and observation.result is not None:
            evaluation = evaluation_of(RunCandidatesResult.model_validate(observation.result))
        else:
            problem = observation.error.message if observation.error else "the run failed"
            evaluation = {
                "passed": 0,
                "total": len(checks),
                "outputs": [],
                "failure": f"The run failed:\n{problem[:300]}",
                "checks": [],
            }
        runtime.stream_writer(
            {"role": "tester", "event": "result", "spec": [evaluation["passed"], len(checks)]}
        )
        return {"evaluations": {task["id"]: evaluation}}

    return evaluate


def make_collect() -> Node[State]:
    """The node that waits for a round's expansions (one router call per round, not per child)."""

    async def collect(state: State, *, runtime: Runtime[TeamContext]) -> dict[str, Any]:
        """Say how many distinct programs the round proposed."""
        found = len(state.get("children", {}))
        note = f"tot: round {state.get('round', 0)}: {found} distinct program(s) to run"
        return {"messages": [AIMessage(note, name="coder")]}

    return collect


def make_prune(config: TotConfig) -> Node[State]:
    """The node that keeps the round's best children, or backtracks."""

    async def prune_round(state: State, *, runtime: Runtime[TeamContext]) -> dict[str, Any]:
        """Score the round's children, keep `beam_width`, or return to the previous level."""
        round_ = state.get("round", 0)
        children = [c for c in state.get("children", {}).values() if c["round"] == round_]
        nodes = scored(children, state.get("evaluations", {}))
        beam: list[TotNode] = state.get("beam", [])
        outcome = prune(nodes, beam, state.get("frontiers", []), config.beam_width, round_)
        update: dict[str, Any] = {"beam": outcome.beam, "steps": 1, "iteration": 1}
        best = ranked(nodes)[0] if nodes else None
        if best is not None:
            update["found"] = best
        note = f"tot: round {round_}: best child passes {_score(best)}"
        if outcome.frontier is not None:
            update["frontiers"] = [outcome.frontier]
        if outcome.backtrack is not None:
            update["backtracks"] = [outcome.backtrack]
            note += f"; below its level's {outcome.backtrack['parent_best']}: backtracking"
        runtime.stream_writer({"role": "supervisor", "event": "pruned", "round": round_})
        return update | {"messages": [AIMessage(note, name="supervisor")]}

    return prune_round


def _score(node: TotNode | None) -> str:
    return f"{node['score']}/{node['total']}" if node else "nothing (no valid program)"


def stop_reason(state: State, guard: str) -> str:
    """Why the search stopped, for the report ("" when a program passes every example)."""
    found: TotNode | None = state.get("found")
    if guard:
        return guard
    if solves(found):
        return ""
    if found is None:
        return f"no valid model output after {state.get('round', 0)} round(s)"
    return f"search exhausted: the best program passes {_score(found)} of the goal's examples"


def delivered_run(found: TotNode, iteration: int) -> TestRun:
    """The delivered program's run in the report's terms (agreement as the team's tests)."""
    return {
        "run_id": found["id"],
        "iteration": iteration,
        "code_hash": found["id"],
        "spec_passed": found["score"],
        "spec_total": found["total"],
        "model_passed": found["agreement"],
        "model_total": found["agreement"],
        "checks": found["checks"],
        "error": "" if found["checks"] or not found["failure"] else found["failure"],
    }


def make_conclude(
    deps: TeamDeps,
    guard: Callable[[State, Limits], str],
    destination: Callable[[TeamContext, str], str],
) -> Node[State]:
    """The node that fixes what is delivered, why the search stopped, and the policy's answer."""

    async def conclude(state: State, *, runtime: Runtime[TeamContext]) -> dict[str, Any]:
        """The best node's file and run; `auto`/`deny` answer here, `ask` asks next."""
        ctx = deps.run_context(runtime.context)
        reason = stop_reason(state, guard(state, deps.limits(ctx)))
        update: dict[str, Any] = {"steps": 1, "stop_reason": reason}
        found: TotNode | None = state.get("found")
        if found is not None:
            iteration = state.get("iteration", 0)
            files = {SOLUTION: found["code"]}
            score = (found["score"], found["agreement"])
            update |= {
                "files": files,
                "best": {"files": files, "iteration": iteration, "score": score},
                "test_runs": [delivered_run(found, iteration)],
            }
        update |= policy_answer(ctx, state.get("destination"), destination, deps.thread_id())
        note = f"team: done ({reason})" if reason else "team: a program passes every example"
        runtime.stream_writer({"role": "supervisor", "event": "concluded", "reason": reason})
        return update | {"messages": [AIMessage(note, name="supervisor")]}

    return conclude
