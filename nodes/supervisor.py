"""Supervisor: routes the team, enforces the guards, and keeps the best candidate.

Most routing is determined by the state (code written → test it; ground truth failing → repair),
so no model call is spent on it. The model is asked only when repairs stop improving the code:
try again, or deliver the best version so far.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, Literal, Protocol

from langchain_core.messages import AIMessage
from langgraph.runtime import Runtime
from langgraph.types import Command
from pydantic import BaseModel, Field

from graphs.context import TeamContext
from graphs.deps import Limits, ModelOutputError, TeamDeps
from graphs.state import TeamState, TestRun, Usage, task_goal
from graphs.state import run_score as score
from nodes.prompt_budget import build_prompt, fold_history
from nodes.prompting import Section, goal_section

Worker = Literal["coder", "tester", "reviewer", "approval", "deliver"]
WORKERS: tuple[Worker, ...] = ("coder", "tester", "reviewer", "approval", "deliver")


class Supervisor(Protocol):
    """The supervisor as LangGraph calls it: it routes with a `Command`, not a state update."""

    def __call__(
        self, state: TeamState, *, runtime: Runtime[TeamContext]
    ) -> Awaitable[Command[Worker]]:
        """Decide who works next."""


class RouteDecision(BaseModel):
    """The supervisor's structured choice when the next step is not determined."""

    next: Literal["coder", "deliver"]
    reason: str = Field(default="", max_length=300)


def all_pass(run: TestRun) -> bool:
    """Every check ran and passed."""
    return not run["error"] and (
        run["spec_passed"] == run["spec_total"] and run["model_passed"] == run["model_total"]
    )


def spec_pass(run: TestRun) -> bool:
    """Every ground-truth check passed (the team's own tests may still fail)."""
    return not run["error"] and run["spec_passed"] == run["spec_total"]


def stagnated(runs: list[TestRun], iteration: int) -> bool:
    """The last repair did not improve on the attempt before it."""
    return iteration >= 2 and len(runs) >= 2 and score(runs[-1]) <= score(runs[-2])


RECURSION_RESERVE = 4
"""Super-steps kept for finishing: the guard stops the team while the run can still reach
`deliver` (one step away; two more between guarded visits, plus slack), so a caller's
recursion limit below the step limit ends in a report, not a `GraphRecursionError`."""


def guard(state: TeamState, limits: Limits) -> str:
    """Why the task must stop now (step limit, token budget, run limit), or an empty string."""
    usage = state.get("usage") or {"prompt_tokens": 0, "completion_tokens": 0}
    tokens = usage["prompt_tokens"] + usage["completion_tokens"]
    if limits.stop:
        return limits.stop
    if state.get("steps", 0) >= limits.max_steps:
        return f"step limit reached ({limits.max_steps} steps)"
    if tokens >= limits.token_budget:
        return f"token budget spent ({tokens} of {limits.token_budget} tokens)"
    remaining = state.get("remaining_steps")
    if remaining is not None and remaining <= RECURSION_RESERVE:
        return "the run's recursion limit is nearly spent (raise it, or lower max_steps)"
    return ""


def _to(worker: Worker, note: str = "", **update: Any) -> Command[Worker]:
    if note:
        update["messages"] = [AIMessage(f"supervisor: {note}", name="supervisor")]
    return Command(goto=worker, update={**update, "next": worker})


def _finish(ctx: TeamContext, reason: str = "", **update: Any) -> Command[Worker]:
    """Go to delivery through the approval policy (keeping any pending state update)."""
    if reason:
        update["stop_reason"] = reason
    if ctx.approve == "ask":
        return _to("approval", reason, **update)
    approved = ctx.approve == "auto"
    comment = "approved by policy (auto)" if approved else "refused by policy (deny)"
    return _to("deliver", reason, approval={"approved": approved, "comment": comment}, **update)


async def _ask_model(
    deps: TeamDeps, state: TeamState, ctx: TeamContext
) -> tuple[RouteDecision | None, Usage]:
    latest = Section(
        "",
        f"Attempts so far: {state['iteration']}. Latest failures:\n{state.get('feedback', '')}",
        keep="head",
    )
    built = await build_prompt(
        deps, "supervisor", state, ctx, pinned=[goal_section(state)], required=[latest]
    )
    try:
        return await deps.ask_json(await deps.model(ctx), built.system, built.user, RouteDecision)
    except ModelOutputError as exc:
        return None, exc.usage


def _verifying_review(state: TeamState) -> list[str]:
    """The reviewer's claims this test run was checking (empty for an ordinary run)."""
    reviews = state.get("reviews", [])
    if not reviews:
        return []
    review = reviews[-1]
    if review["iteration"] != state["iteration"] or review["verdict"] != "changes_requested":
        return []
    return review["claims"]


def _after_verification(
    state: TeamState, ctx: TeamContext, claims: list[str], max_iterations: int
) -> Command[Worker]:
    run = state["test_runs"][-1]
    failing = [c for c in run["checks"] if c["name"] in claims and not c["passed"]]
    if not failing:
        return _finish(
            ctx,
            "",
            messages=[
                AIMessage(
                    "supervisor: the reviewer's claims were run and did not hold; delivering",
                    name="supervisor",
                )
            ],
        )
    if state["iteration"] >= max_iterations:
        return _finish(ctx, f"iteration limit reached ({max_iterations} attempts)")
    feedback = "\n".join(f"- {c['error']} (found by the reviewer)" for c in failing)
    return _to("coder", "the reviewer's claims hold; back to the coder", feedback=feedback)


async def _after_tests(
    deps: TeamDeps, state: TeamState, ctx: TeamContext, max_iterations: int
) -> Command[Worker]:
    run = state["test_runs"][-1]
    if (claims := _verifying_review(state)) and spec_pass(run):
        return _after_verification(state, ctx, claims, max_iterations)
    best = state.get("best")
    update: dict[str, Any] = {}
    if best is not None and score(run) < tuple(best["score"]):
        stale = {path: "" for path in state.get("files", {}) if path not in best["files"]}
        update["files"] = {**stale, **best["files"]}
        update["feedback"] = (
            "Your last change made more checks fail, so it was discarded and the best "
            f"version was restored. The discarded change failed with:\n{state.get('feedback', '')}"
        )
    if all_pass(run) or (spec_pass(run) and run["model_total"]):
        # Green, or only the team's own tests fail: the reviewer judges (and adjudicates).
        reviews = state.get("reviews", [])
        if reviews and reviews[-1]["run_id"] == run["run_id"] and not update:
            if all_pass(run) or state["iteration"] >= max_iterations:
                note = "the code and tests are unchanged since the last review; delivering"
                return _finish(
                    ctx, "", messages=[AIMessage(f"supervisor: {note}", name="supervisor")]
                )
            # The repair returned the code that failed: ask again, saying so, not the reviewer.
            repeat = (
                "Your last answer repeated the code that fails. Change the logic so that these "
                f"pass:\n{state.get('feedback', '')}"
            )
            return _to("coder", "the repair changed nothing; back to the coder", feedback=repeat)
        return _to("reviewer", **update)
    if state["iteration"] >= max_iterations:
        return _finish(ctx, f"iteration limit reached ({max_iterations} attempts)", **update)
    if stagnated(state["test_runs"], state["iteration"]):
        decision, usage = await _ask_model(deps, state, ctx)
        update["usage"] = usage
        if decision is not None and decision.next == "deliver":
            reason = f"stopped repairing: {decision.reason or 'no progress'}"
            return _finish(ctx, reason, **update)
    return _to("coder", "tests fail; back to the coder", **update)


def _after_review(state: TeamState, ctx: TeamContext, max_iterations: int) -> Command[Worker]:
    reviews = state["reviews"]
    review = reviews[-1]
    if review["verdict"] == "approve":
        return _finish(ctx)
    if review["claims"]:
        return _to("tester", "running the reviewer's claims before changing any code")
    if state["iteration"] >= max_iterations:
        return _finish(ctx, f"iteration limit reached ({max_iterations} attempts)")
    unverifiable = [r for r in reviews if r["verdict"] == "changes_requested" and not r["claims"]]
    if len(unverifiable) > 1 and spec_pass(state["test_runs"][-1]):
        return _finish(
            ctx,
            "",
            messages=[
                AIMessage(
                    "supervisor: the reviewer repeats advice it cannot show with a failing call; "
                    "delivering the version that passes the checks",
                    name="supervisor",
                )
            ],
        )
    return _to("coder", "reviewer requested changes")


def _after_approval(state: TeamState, ctx: TeamContext) -> Command[Worker]:
    decision = state.get("approval") or {"approved": False, "comment": ""}
    if decision["approved"] or state.get("stop_reason"):
        return _to("deliver")
    comment = decision["comment"].strip() or "the human rejected the delivery"
    return _to("coder", "delivery rejected; addressing the comment", feedback=f"- {comment}")


def _without_files(state: TeamState, ctx: TeamContext, max_iterations: int) -> Command[Worker]:
    """No code yet: the coder tries again, unless every attempt it had gave no valid output."""
    if state["iteration"] >= max_iterations:
        return _finish(ctx, f"no valid model output after {state['iteration']} attempts")
    return _to("coder")


def _with_update(command: Command[Worker], extra: dict[str, Any]) -> Command[Worker]:
    """`command` carrying `extra` too (messages are concatenated, not replaced)."""
    if not extra:
        return command
    update: dict[str, Any] = dict(command.update or {})
    for key, value in extra.items():
        update[key] = [*value, *update.get(key, [])] if key == "messages" else value
    return Command(goto=command.goto, update=update)


async def _route(
    deps: TeamDeps, state: TeamState, ctx: TeamContext, limits: Limits
) -> Command[Worker]:
    """Who works next, from the (folded) state; the model only when repairs stagnate."""
    last = state.get("next")
    if last == "approval":
        return _after_approval(state, ctx)
    if reason := guard(state, limits):
        return _finish(ctx, reason)
    if not state.get("files"):
        return _without_files(state, ctx, limits.max_iterations)
    if last == "coder":
        return _to("tester")
    if last == "tester":
        return await _after_tests(deps, state, ctx, limits.max_iterations)
    if last == "reviewer":
        return _after_review(state, ctx, limits.max_iterations)
    return _to("tester")


def make_supervisor(deps: TeamDeps) -> Supervisor:
    """The node that routes the team and keeps its history bounded."""

    async def supervisor(state: TeamState, *, runtime: Runtime[TeamContext]) -> Command[Worker]:
        """Decide who works next, and fold old messages into the running summary.

        Folding here (the supervisor sees every step) keeps the state's history bounded for
        every agent; routing then reads the folded state, as the next worker will.
        """
        # The first node: a bad input fails here, before any model call; a chat's goal is set.
        goal = task_goal(state)
        given = {} if state.get("goal") == goal else {"goal": goal}
        state = {**state, "goal": goal}
        ctx = deps.run_context(runtime.context)
        folded = await fold_history(deps, state, ctx)
        if folded:
            removed = {m.id for m in folded["messages"]}
            messages = [m for m in state.get("messages", []) if m.id not in removed]
            state = {**state, "messages": messages, "working": folded["working"]}
        command = await _route(deps, state, ctx, deps.limits(ctx))
        if command.goto in ("approval", "deliver") and not state.get("destination"):
            # Fixed now, so the human approves the folder the files will go to, whatever
            # context a later resume brings.
            destination = deps.destination(ctx, deps.thread_id())
            folded = {**folded, "destination": str(destination)}
        runtime.stream_writer({"role": "supervisor", "event": "route", "next": command.goto})
        return _with_update(command, {**given, **folded})

    return supervisor
