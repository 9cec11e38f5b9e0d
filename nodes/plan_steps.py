"""Plan-and-Solve's steps after the plan: schedule a wave, solve a subtask, merge, finish.

`schedule` counts a wave when some subtask is ready; `dispatch` sends each ready subtask to
`solve` (`Send`, one task each, run in parallel) with a copy of the merged files. `solve` runs
the ReAct worker (compiled by the graph builder, handed in) on that copy under its own ledger
`scope`, then the subtask's check through the gateway, and reports one `SubtaskResult`: its
changes against the wave's base. `merge` merges the wave hunk by hunk (`nodes.plan_merge`);
a subtask that clashes a second time, after its re-plan, stops the task with the conflict as
the reason. Only subtasks whose check passed are merged: a failed one's change is kept in its
result for people to read, and the subtasks depending on it never run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from langchain_core.messages import AIMessage
from langchain_core.runnables import Runnable
from langgraph.runtime import Runtime
from langgraph.types import Send

from graphs.context import TeamContext
from graphs.deps import Node, TeamDeps
from graphs.plan_state import PlanState, SolveInput, SubtaskResult, SubtaskSpec
from nodes.approvers import interrupt_approver
from nodes.plan_dag import blocked, ready
from nodes.plan_merge import merge_wave
from nodes.react_support import changed_files
from tools.gateway import CallContext
from tools.repo_diff import diff_snapshots
from tools.workspaces import MemoryWorkspace

SHOWN_CHECK = 600


def make_schedule(deps: TeamDeps) -> Node[PlanState]:
    """The node that opens a wave when some subtask is ready (`dispatch` sends them)."""

    async def schedule(state: PlanState, *, runtime: Runtime[TeamContext]) -> dict[str, Any]:
        """Count the wave; nothing to do when no subtask is ready."""
        due = ready(state.get("plan") or [], state.get("results") or {})
        return {"wave": 1} if due else {}

    return schedule


def dispatch(state: PlanState) -> list[Send] | Literal["finish"]:
    """One `Send` to `solve` per ready subtask, each with the merged files; else finish."""
    if "outcome" in state:
        return "finish"
    plan = state.get("plan") or []
    results = state.get("results") or {}
    due = set(ready(plan, results))
    if not due:
        return "finish"
    files = state.get("files") or {}
    return [
        Send(
            "solve",
            SolveInput(
                subtask=spec,
                files=dict(files),
                wave=state.get("wave", 0),
                attempt=1 if spec["id"] in results else 0,
            ),
        )
        for spec in plan
        if spec["id"] in due
    ]


def worker_goal(spec: SubtaskSpec) -> str:
    """The worker's goal: the subtask, the files it should touch, and how it is checked."""
    check = spec["check"]
    shown = f"the test {check['target']}" if check["kind"] == "test" else "this python check"
    text = f"{spec['goal']}\n\nChange only: {', '.join(spec['files'])}. Done when {shown} passes."
    if check["kind"] == "python":
        text += f"\n```python\n{check['target']}\n```"
    return text


def scope_of(payload: SolveInput) -> str:
    """The ledger scope of one run of a subtask (stable across a resume)."""
    return f"plan-w{payload['wave']}-{payload['subtask']['id']}-a{payload['attempt']}"


def _check_verdict(
    tool: str, ok: bool, result: Mapping[str, Any] | None, error: str
) -> tuple[bool, str]:
    """Whether the check passed, and what it said."""
    if not ok or result is None:
        return False, f"failed: {error}"
    if tool == "run_repo_tests":
        passed = bool(result.get("passed"))
        detail = f"{result.get('tests_passed', 0)} passed, {result.get('tests_failed', 0)} failed"
        more = "" if passed else f": {str(result.get('excerpt', ''))[:SHOWN_CHECK]}"
        return passed, f"{'passed' if passed else 'failed'} ({detail}){more}"
    code = result.get("exit_code")
    if code == 0:
        return True, "passed"
    return False, f"failed (exit {code}): {str(result.get('stderr', ''))[-SHOWN_CHECK:]}"


def make_solve(deps: TeamDeps, worker: Runnable[Any, Any]) -> Node[SolveInput]:
    """The node that carries out one subtask: the worker, then the subtask's check."""

    async def check(
        payload: SolveInput, files: dict[str, str], ctx: TeamContext, scope: str
    ) -> tuple[bool, str]:
        spec = payload["subtask"]["check"]
        tool, args = (
            ("run_repo_tests", {"targets": [spec["target"]]})
            if spec["kind"] == "test"
            else ("run_python", {"code": spec["target"]})
        )
        gateway = await deps.gateway(ctx)
        observation = await gateway.call(
            tool,
            args,
            CallContext(
                thread_id=deps.thread_id(),
                tool_call_id=f"{scope}-check",
                workspace=MemoryWorkspace(files),
                tenant_id=ctx.tenant,
                limits=deps.sandbox_limits,
                approver=interrupt_approver,
            ),
        )
        error = observation.error.message if observation.error else "the check did not run"
        return _check_verdict(tool, observation.ok, observation.result, error)

    async def solve(state: SolveInput, *, runtime: Runtime[TeamContext]) -> dict[str, Any]:
        """Run the worker on the wave's files; report the subtask's changes and its check.

        The worker is checkpointed under this task's namespace: when a resumed graph runs this
        node again (the check was held for a human), the worker resumes from its checkpoint —
        finished, it returns its state without asking the model or running a tool again.
        """
        payload = state
        ctx = deps.run_context(runtime.context)
        spec, base, scope = payload["subtask"], payload["files"], scope_of(payload)
        out = await worker.ainvoke(
            {"goal": worker_goal(spec), "files": dict(base), "scope": scope},
            context=runtime.context,
        )
        after: dict[str, str] = out.get("files") or {}
        passed, verdict = await check(payload, after, ctx, scope)
        outcome = out.get("outcome") or {}
        result: SubtaskResult = {
            "id": spec["id"],
            "status": "done" if passed else "failed",
            "wave": payload["wave"],
            "attempt": payload["attempt"],
            "summary": str(outcome.get("summary") or outcome.get("reason") or ""),
            "changes": changed_files(base, after),
            "patch": diff_snapshots(base, after).patch,
            "check": verdict,
        }
        event = {"role": "plan", "event": "subtask", "id": spec["id"], "passed": passed}
        runtime.stream_writer(event)
        usage = out.get("usage")
        update: dict[str, Any] = {"results": {spec["id"]: result}, "steps": out.get("steps", 0)}
        return update | ({"usage": usage} if usage else {})

    return solve


def _still_conflicting(results: Mapping[str, SubtaskResult], dropped: list[str]) -> str | None:
    again = [i for i in dropped if results[i]["attempt"] >= 1]
    if not again:
        return None
    return f"subtask(s) {', '.join(again)} still conflict after one re-plan"


def make_merge(deps: TeamDeps) -> Node[PlanState]:
    """The node that merges the wave's passing subtasks into the files, or reports conflicts."""

    async def merge(state: PlanState, *, runtime: Runtime[TeamContext]) -> dict[str, Any]:
        """Merge in plan order; a clash drops the later subtask's change (to be re-planned)."""
        wave = state.get("wave", 0)
        results = state.get("results") or {}
        order = [s["id"] for s in state.get("plan") or []]
        passed = [
            (i, results[i]["changes"])
            for i in order
            if i in results and results[i]["wave"] == wave and results[i]["status"] == "done"
        ]
        merged = merge_wave(state.get("files") or {}, passed)
        clashed: dict[str, SubtaskResult] = {
            i: {**results[i], "status": "conflict"} for i in merged.dropped
        }
        text = f"Wave {wave}: merged {', '.join(merged.merged) or 'nothing'}"
        for c in merged.conflicts:
            text += f"; {c['dropped']} conflicts with {c['kept']} in {c['path']} ({c['lines']})"
        update: dict[str, Any] = {
            "files": merged.files,
            "results": clashed,
            "conflicts": merged.conflicts,
            "messages": [AIMessage(text, name="merge")],
        }
        stop = _still_conflicting(results, merged.dropped)
        if stop is not None:
            where = "; ".join(f"{c['path']} {c['lines']}" for c in merged.conflicts)
            reason = f"{stop} ({where})"
            update["outcome"] = {"status": "stopped", "reason": reason, "summary": ""}
        return update

    return merge


def after_plan(state: PlanState) -> Literal["schedule", "finish"]:
    """A valid plan is scheduled; a stopped planner finishes with its reason."""
    return "finish" if "outcome" in state else "schedule"


def after_merge(state: PlanState) -> Literal["replan", "schedule", "finish"]:
    """Conflicts are re-planned; otherwise the next wave, unless the merge stopped the task."""
    if "outcome" in state:
        return "finish"
    return "replan" if state.get("conflicts") else "schedule"


def final_outcome(state: PlanState) -> dict[str, Any]:
    """Finished when every subtask is done; otherwise stopped, saying which are not and why."""
    plan = state.get("plan") or []
    results = state.get("results") or {}
    done = [s["id"] for s in plan if s["id"] in results and results[s["id"]]["status"] == "done"]
    summary = "; ".join(f"{i}: {results[i]['summary']}" for i in done if results[i]["summary"])
    if len(done) == len(plan):
        return {
            "status": "finished",
            "reason": f"all {len(plan)} subtask(s) done",
            "summary": summary,
        }
    problems = [
        f"{i} failed its check ({r['check']})"
        for i, r in results.items()
        if r["status"] == "failed"
    ]
    waiting = blocked(plan, results)
    if waiting:
        problems.append(f"{', '.join(waiting)} did not run (a subtask they depend on is not done)")
    return {"status": "stopped", "reason": "; ".join(problems), "summary": summary}


def make_finish(deps: TeamDeps) -> Node[PlanState]:
    """The last node: the outcome (unless a step already stopped the task) and a report line."""

    async def finish(state: PlanState, *, runtime: Runtime[TeamContext]) -> dict[str, Any]:
        """State the outcome."""
        outcome = state.get("outcome") or final_outcome(state)
        verb = "Finished" if outcome["status"] == "finished" else "Stopped"
        note = AIMessage(f"{verb}: {outcome['reason']}.", name="plan_solve")
        return {"outcome": outcome, "messages": [note]}

    return finish
