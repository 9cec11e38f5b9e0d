"""Reflexion's steps on a repository task: an attempt, the critique of a failed one, giving up.

`attempt` runs the ReAct worker (compiled by the graph builder, handed in) on the ORIGINAL
repository, never on a failed attempt's files, with the critiques so far in its opening message;
the repository's tests then run (`nodes/repo_steps.py`, reused by the builder). `reflect` asks
the model for a short critique of a failed attempt — what failed and what to do differently —
from its patch and the test output, keeps it in `reflections` and, when the run uses memory,
stores it as a lesson for later similar tasks. `give_up` says why nothing was delivered. The
routers are pure functions of the state (table-tested).

The state lives here rather than in `graphs/`: node modules may import only the team types, and
this schema is Reflexion's alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, NotRequired

from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.runnables import Runnable
from langgraph.runtime import Runtime
from pydantic import BaseModel, Field
from typing_extensions import TypedDict

from graphs.context import ApproveMode, TeamContext
from graphs.deps import Limits, ModelOutputError, Node, TeamDeps, text_of
from graphs.react_state import Outcome, RepoState
from memory.reflexion import lesson_record
from nodes.prompts import load_prompt
from nodes.react_support import GOAL, opening, tests_call_id
from tools.builtin.run_repo_tests import RunRepoTestsResult
from tools.gateway import CallContext
from tools.repo_diff import diff_snapshots
from tools.workspaces import MemoryWorkspace

ROLE = "reflect"
DEFAULT_MAX_ATTEMPTS = 3
MAX_KEPT_REFLECTIONS = 8
SHOWN_PATCH = 3000
SHOWN_OUTPUT = 2000
LESSON_IMPORTANCE = 0.6
NO_OUTCOME: Outcome = {
    "status": "stopped",
    "reason": "the worker ended without an outcome",
    "summary": "",
}
RETRY_HEADER = (
    "Earlier attempts at this goal failed the repository's tests. You start again from the "
    "original files. What went wrong before, and what to do differently:"
)


class Reflection(TypedDict):
    """The critique of one failed attempt."""

    attempt: int
    tests: str
    """What the repository's tests said of that attempt (the summary line)."""
    critique: str


def append_reflections(
    left: list[Reflection] | None, right: list[Reflection] | None
) -> list[Reflection]:
    """Append the new critiques, keeping the newest `MAX_KEPT_REFLECTIONS` (checkpoint size)."""
    return [*(left or []), *(right or [])][-MAX_KEPT_REFLECTIONS:]


class ReflexionState(RepoState):
    """The repository agent's state, plus the attempts and their critiques."""

    reflections: Annotated[list[Reflection], append_reflections]
    attempt: NotRequired[int]
    """Attempts started so far (1 during the first)."""
    max_attempts: NotRequired[int]
    approve: NotRequired[ApproveMode]
    """The run's approval policy, kept so the router is a function of the state alone."""
    halted: NotRequired[str]
    """Why no further attempt may start although attempts are left (a budget)."""


class Critique(BaseModel):
    """The model's critique of a failed attempt: short, so it fits the next opening message."""

    what_failed: str = Field(
        min_length=1, max_length=300, description="Which test failed and why, in one sentence."
    )
    do_differently: str = Field(
        min_length=1, max_length=300, description="What the next attempt must do differently."
    )

    def text(self) -> str:
        """One line for the next attempt's opening message and for memory."""
        return f"{self.what_failed.strip()} Next time: {self.do_differently.strip()}"


def after_attempt(state: ReflexionState) -> Literal["reflect", "approval", "deliver", "give_up"]:
    """Where a tested attempt goes: passed, to a human or delivery; failed, to a critique.

    A passing attempt goes to a human under the `ask` policy (when it changed something), else
    straight to delivery; a failing one is criticised while attempts are left, else given up.
    """
    tests = state.get("tests")
    if tests is not None and tests["ok"]:
        changed = (state.get("files") or {}) != (state.get("repo_files") or {})
        return "approval" if state.get("approve", "ask") == "ask" and changed else "deliver"
    if state.get("attempt", 0) >= state.get("max_attempts", DEFAULT_MAX_ATTEMPTS):
        return "give_up"
    return "reflect"


def after_reflect(state: ReflexionState) -> Literal["attempt", "give_up"]:
    """Another attempt, unless a budget forbade it."""
    return "give_up" if state.get("halted") else "attempt"


def attempt_opening(
    goal: str, files: Mapping[str, str], past: Sequence[Reflection]
) -> HumanMessage:
    """The worker's first message: the goal, the files, and every critique so far."""
    first = opening(goal, files)
    if not past:
        return first
    lines = [f"- Attempt {r['attempt']} ({r['tests']}): {r['critique']}" for r in past]
    return HumanMessage(f"{text_of(first)}\n\n{RETRY_HEADER}\n" + "\n".join(lines), name=GOAL)


def halt_reason(state: ReflexionState, limits: Limits) -> str | None:
    """Why another attempt may not start although attempts are left (None: it may)."""
    if limits.stop:
        return limits.stop
    usage = state.get("usage")
    spent = usage["prompt_tokens"] + usage["completion_tokens"] if usage else 0
    if spent >= limits.token_budget:
        return f"token budget spent: {spent} of {limits.token_budget} tokens"
    return None


async def failure_output(deps: TeamDeps, ctx: TeamContext, files: dict[str, str]) -> str:
    """The failures the last test run printed (its ledger record: the suite does not run again)."""
    gateway = await deps.gateway(ctx)
    observation = await gateway.call(
        "run_repo_tests",
        {},
        CallContext(
            thread_id=deps.thread_id(),
            tool_call_id=tests_call_id(files),
            workspace=MemoryWorkspace(files),
            tenant_id=ctx.tenant,
            limits=deps.sandbox_limits,
        ),
    )
    if not observation.ok or observation.result is None:
        return observation.error.message if observation.error else "the test run failed"
    return RunRepoTestsResult.model_validate(observation.result).excerpt[:SHOWN_OUTPUT]


def make_attempt(
    deps: TeamDeps, worker: Runnable[Any, Any], default_attempts: int = DEFAULT_MAX_ATTEMPTS
) -> Node[ReflexionState]:
    """The node that runs one attempt of the worker on the original repository."""

    async def attempt(state: ReflexionState, *, runtime: Runtime[TeamContext]) -> dict[str, Any]:
        """The worker under its own ledger scope; its files replace the working copy.

        Checkpointed under this node's task: a resumed graph resumes the worker mid-loop.
        """
        ctx = deps.run_context(runtime.context)
        number = state.get("attempt", 0) + 1
        original = state.get("repo_files") or state.get("files") or {}
        first = attempt_opening(state["goal"], original, state.get("reflections") or [])
        out = await worker.ainvoke(
            {
                "goal": state["goal"],
                "files": dict(original),
                "scope": f"reflexion-a{number}",
                "messages": [first],
            },
            context=runtime.context,
        )
        outcome: Outcome = out.get("outcome") or NO_OUTCOME
        runtime.stream_writer({"role": "reflexion", "event": "attempt", "attempt": number})
        note = AIMessage(f"Attempt {number}: {outcome['summary'] or outcome['reason']}", name=ROLE)
        update: dict[str, Any] = {
            "attempt": number,
            "max_attempts": ctx.max_iterations or default_attempts,
            "approve": ctx.approve,
            "files": out.get("files") or dict(original),
            "outcome": outcome,
            "steps": out.get("steps", 0),
            "messages": [first, note],
        }
        return update | ({"usage": out["usage"]} if out.get("usage") else {})

    return attempt


def reflect_request(state: ReflexionState, output: str) -> str:
    """The critic's user message: the goal, what the attempt did and said, what the tests said."""
    outcome = state.get("outcome")
    said = (outcome["summary"] or outcome["reason"]) if outcome else "(nothing)"
    patch = diff_snapshots(state.get("repo_files") or {}, state.get("files") or {}).patch
    tests = state.get("tests")
    past = "\n".join(f"- {r['critique']}" for r in state.get("reflections") or []) or "(none)"
    return (
        f"Goal: {state['goal']}\n\nAttempt {state.get('attempt', 0)}; the agent said: {said}\n\n"
        f"Its patch:\n```diff\n{patch[:SHOWN_PATCH] or '(no change)'}\n```\n\n"
        f"Repository tests: {tests['summary'] if tests else 'did not run'}\n"
        f"Test output:\n```\n{output}\n```\n\nEarlier critiques:\n{past}"
    )


async def _remember(deps: TeamDeps, ctx: TeamContext, goal: str, entry: Reflection) -> bool:
    """Store the critique as a lesson for later similar tasks; False when memory is off."""
    memory = await deps.memory(ctx)
    if memory is None:
        return False
    text = f"an attempt failed the repository's tests ({entry['tests']}): {entry['critique']}"
    record = lesson_record(
        goal,
        text,
        kind="critique",
        tenant=ctx.tenant,
        task_id=deps.thread_id(),
        importance=LESSON_IMPORTANCE,
    )
    await asyncio.to_thread(memory.remember, record)  # same content, same id: replay-safe
    return True


def make_reflect(deps: TeamDeps) -> Node[ReflexionState]:
    """The node that criticises a failed attempt (one structured model call)."""

    async def reflect(state: ReflexionState, *, runtime: Runtime[TeamContext]) -> dict[str, Any]:
        """A critique in `reflections` (and memory), or the reason no attempt may follow."""
        ctx = deps.run_context(runtime.context)
        halted = halt_reason(state, deps.limits(ctx))
        if halted is not None:
            return {"halted": halted, "messages": [AIMessage(f"Stopped: {halted}.", name=ROLE)]}
        tests = state.get("tests")
        summary = tests["summary"] if tests else "the tests did not run"
        output = await failure_output(deps, ctx, state.get("files") or {})
        model = await deps.model(ctx)
        system = load_prompt(ROLE).text
        try:
            answer, usage = await deps.ask_json(
                model, system, reflect_request(state, output), Critique
            )
            critique = answer.text()
        except ModelOutputError as exc:  # no valid critique: the test output stands in for it
            usage, critique = exc.usage, f"The tests failed: {output[:300]}"
        entry: Reflection = {
            "attempt": state.get("attempt", 0),
            "tests": summary,
            "critique": critique,
        }
        stored = await _remember(deps, ctx, state["goal"], entry)
        runtime.stream_writer({"role": ROLE, "event": "critique", "stored": stored})
        note = AIMessage(f"Critique of attempt {entry['attempt']}: {critique}", name=ROLE)
        return {"reflections": [entry], "usage": usage, "steps": 1, "messages": [note]}

    return reflect


def give_up_reason(state: ReflexionState) -> str:
    """Why nothing is delivered: no attempt passed the tests, or a budget stopped the attempts."""
    tests = state.get("tests")
    last = tests["summary"] if tests else "the tests did not run"
    if state.get("halted"):
        return f"not delivered: {state.get('halted')}; the last attempt's tests: {last}"
    done, most = state.get("attempt", 0), state.get("max_attempts", DEFAULT_MAX_ATTEMPTS)
    return (
        f"not delivered: no attempt passed the repository's tests ({done} of {most}); last: {last}"
    )


def make_give_up(deps: TeamDeps) -> Node[ReflexionState]:
    """The node that ends a task no attempt solved: a report, nothing written."""

    async def give_up(state: ReflexionState, *, runtime: Runtime[TeamContext]) -> dict[str, Any]:
        """The repository agent's report, `not_delivered`, with the last test output."""
        ctx = deps.run_context(runtime.context)
        destination = deps.destination(ctx, deps.thread_id(), state.get("destination"))
        problem = give_up_reason(state)
        outcome = state.get("outcome")
        report: dict[str, object] = {
            "status": "not_delivered",
            "problem": problem,
            "destination": str(destination),
            "files": [],
            "patch_file": "",
            "agent": dict(outcome) if outcome else {},
            "tests": dict(state.get("tests") or {}),
            "test_output": await failure_output(deps, ctx, state.get("files") or {}),
            "attempts": state.get("attempt", 0),
            "reflections": [dict(r) for r in state.get("reflections") or []],
            "usage": dict(state.get("usage") or {}),
        }
        text = f"{problem[:1].upper()}{problem[1:]}."
        return {"report": report, "delivered": [], "messages": [AIMessage(text, name="deliver")]}

    return give_up
