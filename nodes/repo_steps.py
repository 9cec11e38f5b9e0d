"""The repository agent's steps around its worker: prepare, test, ask, deliver the patch.

The working copy is the state's `files` (a `MemoryWorkspace` for every tool); the original is
`repo_files`, written once. After the worker, the repository's own test suite runs once more
through the gateway (`run_repo_tests`, ledgered, keyed by the files), then a human is asked
about the patch (`interrupt()` with an Agent Inbox `HumanInterrupt`: the diff, the tests), and
`deliver_patch` writes it to the run's delivery folder through the gateway, where the answer was
ledgered under a key bound to exactly that patch and folder. A rejection with a comment goes back
to the worker through `rework` (the rules: `nodes/repo_rework.py`).
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from langchain_core.messages import AIMessage
from langgraph.config import get_config
from langgraph.runtime import Runtime
from langgraph.types import interrupt

from graphs.context import TeamContext
from graphs.deps import Node, TeamDeps
from graphs.react_state import RepoState, RepoTests
from graphs.state import ApprovalResume, InvalidTaskInputError, task_goal
from nodes.approvers import (
    answered_by,
    approval_key,
    approver_of,
    interrupt_approver,
    parse_resume,
    recorded_approver,
)
from nodes.inbox import fenced, question_for
from nodes.react_support import tests_call_id
from nodes.repo_rework import rework_stop, rework_update, sent_back
from tools.builtin.run_repo_tests import RunRepoTestsResult
from tools.gateway import ApprovalDecision, ApprovalRequest, Approver, CallContext
from tools.repo_diff import RepoDiff, diff_snapshots
from tools.workspaces import DirWorkspace, MemoryWorkspace

TESTS_TOOL = "run_repo_tests"
DELIVER_TOOL = "deliver_patch"
SHOWN_PATCH = 20_000


def make_repo_prepare(deps: TeamDeps) -> Node[RepoState]:
    """The first step: settle the goal and keep the original repository for the patch."""

    async def prepare(state: RepoState, *, runtime: Runtime[TeamContext]) -> dict[str, Any]:
        """Refuse a task without files; the original is the given `repo_files`, else `files`."""
        goal = task_goal(state)
        original = state.get("repo_files") or state.get("files") or {}
        if not original:
            raise InvalidTaskInputError(
                "invalid task input: a repository task needs the repository's files "
                "(`repo_files` or `files`)"
            )
        return {"goal": goal, "repo_files": original, "files": state.get("files") or original}

    return prepare


def _tests_of(ok: bool, result: dict[str, Any] | None, error: str) -> RepoTests:
    if not ok or result is None:
        return {"tool": TESTS_TOOL, "ok": False, "passed": 0, "failed": 0, "summary": error}
    run = RunRepoTestsResult.model_validate(result)
    failing = f"; failing: {', '.join(run.failed[:5])}" if run.failed else ""
    summary = f"{run.tests_passed} passed, {run.tests_failed} failed{failing}"
    return {
        "tool": TESTS_TOOL,
        "ok": run.passed,
        "passed": run.tests_passed,
        "failed": run.tests_failed,
        "summary": summary,
    }


def make_repo_tests(deps: TeamDeps) -> Node[RepoState]:
    """The node that runs the repository's test suite on the worker's files, once."""

    async def repo_tests(state: RepoState, *, runtime: Runtime[TeamContext]) -> dict[str, Any]:
        """One `run_repo_tests` call keyed by the files (a resumed task replays it)."""
        ctx = deps.run_context(runtime.context)
        files = state.get("files") or {}
        gateway = await deps.gateway(ctx)
        observation = await gateway.call(
            TESTS_TOOL,
            {},
            CallContext(
                thread_id=deps.thread_id(),
                tool_call_id=tests_call_id(files),
                workspace=MemoryWorkspace(files),
                tenant_id=ctx.tenant,
                limits=deps.sandbox_limits,
            ),
        )
        error = observation.error.message if observation.error else "the test run failed"
        tests = _tests_of(observation.ok, observation.result, error)
        note = AIMessage(f"repository tests: {tests['summary']}", name="repo_tests")
        return {"tests": tests, "steps": 1, "messages": [note]}

    return repo_tests


def patch_of(state: RepoState) -> RepoDiff:
    """The working copy against the original."""
    return diff_snapshots(state.get("repo_files") or {}, state.get("files") or {})


def patch_args(diff: RepoDiff, summary: str) -> dict[str, Any]:
    """The `deliver_patch` arguments of `diff` (the tool computes the diff text again)."""
    changes = [{"path": c.path, "before": c.before, "after": c.after} for c in diff.changes]
    return {"changes": changes, "summary": summary[:2000]}


def _summary(state: RepoState) -> str:
    outcome = state.get("outcome")
    if outcome is None:
        return "the agent made these changes"
    return outcome["summary"] or outcome["reason"]


def _request(state: RepoState, diff: RepoDiff, destination: str) -> dict[str, Any]:
    tests = state.get("tests")
    return {
        "kind": "patch_approval",
        "action": DELIVER_TOOL,
        "summary": _summary(state),
        "files": [c.path for c in diff.changes],
        "destination": destination,
        "tests": tests["summary"] if tests else "the repository's tests did not run",
        "patch": diff.patch[:SHOWN_PATCH],
    }


def _markdown(request: dict[str, Any]) -> str:
    return "\n".join(
        [
            f"## Deliver a patch of {len(request['files'])} file(s) to `{request['destination']}`",
            "",
            f"{request['summary']}",
            "",
            f"Repository tests: {request['tests']}.",
            "",
            fenced(request["patch"], "diff"),
            "",
            "Accept to deliver the patch; respond or ignore to reject it.",
        ]
    )


def ask_about_patch(request: dict[str, Any], who: str) -> Approver:
    """An approver that pauses the graph with the patch and reads the human's answer."""

    async def ask(_request: ApprovalRequest) -> ApprovalDecision:
        answer = parse_resume(interrupt(question_for(DELIVER_TOOL, request, _markdown(request))))
        answered_by(get_config())
        return ApprovalDecision(approved=answer.approved, comment=answer.comment, approver=who)

    return ask


def _key(thread_id: str, destination: str, diff: RepoDiff) -> str:
    return approval_key(thread_id, destination, {"patch.diff": diff.patch})


def make_repo_approval(deps: TeamDeps) -> Node[RepoState]:
    """The node that asks a human about the patch; the answer is ledgered by the gateway."""

    async def approval(state: RepoState, *, runtime: Runtime[TeamContext]) -> dict[str, Any]:
        """Ask once (a resumed graph finds the recorded answer), bound to this patch and folder."""
        ctx = deps.run_context(runtime.context)
        thread_id = deps.thread_id()
        destination = str(deps.destination(ctx, thread_id, state.get("destination")))
        diff = patch_of(state)
        request = _request(state, diff, destination)
        gateway = await deps.gateway(ctx)
        answer = await gateway.request_approval(
            DELIVER_TOOL,
            patch_args(diff, request["summary"]),
            CallContext(
                thread_id=thread_id,
                tool_call_id="deliver-patch",
                workspace=MemoryWorkspace(),
                tenant_id=ctx.tenant,
                approver=ask_about_patch(request, approver_of(get_config())),
                approval_key=_key(thread_id, destination, diff),
            ),
            reason="the agent asks before delivering its patch",
        )
        verdict = "approved" if answer.approved else "rejected"
        note = f"human {verdict} the patch" + (f": {answer.comment}" if answer.comment else "")
        return {
            "approval": {"approved": answer.approved, "comment": answer.comment},
            "destination": destination,
            "messages": [AIMessage(note, name="approval")],
        }

    return approval


def _refusal(state: RepoState, ctx: TeamContext, diff: RepoDiff) -> str | None:
    """Why nothing is delivered, before any call (None: deliver)."""
    if not diff.changes:
        return "nothing to deliver: the files equal the original repository"
    if ctx.approve == "deny":
        return "not delivered: the approval policy refuses deliveries"
    approval = state.get("approval")
    if ctx.approve == "ask" and approval is not None and not approval["approved"]:
        comment = f": {approval['comment']}" if approval["comment"] else ""
        return f"not delivered: a human rejected the patch{comment}"
    return None


def make_repo_deliver(deps: TeamDeps) -> Node[RepoState]:
    """The node that writes the approved patch and the changed files, once, and reports."""

    async def deliver(state: RepoState, *, runtime: Runtime[TeamContext]) -> dict[str, Any]:
        """`deliver_patch` through the gateway (its approval ledgered), then the report."""
        ctx = deps.run_context(runtime.context)
        thread_id = deps.thread_id()
        destination = deps.destination(ctx, thread_id, state.get("destination"))
        diff = patch_of(state)
        problem = _refusal(state, ctx, diff)
        why = rework_stop(state, deps.limits(ctx)) if state.get("reworks") else ""
        delivered: list[str] = []
        if problem is None:
            approver: Approver = interrupt_approver
            if ctx.approve == "auto":
                approver = recorded_approver(
                    ApprovalResume(approved=True, comment="approved by policy (auto)"),
                    "policy (auto)",
                )
            gateway = await deps.gateway(ctx)
            observation = await gateway.call(
                DELIVER_TOOL,
                patch_args(diff, _summary(state)),
                CallContext(
                    thread_id=thread_id,
                    tool_call_id="deliver-patch",
                    workspace=await asyncio.to_thread(DirWorkspace.create, destination),
                    tenant_id=ctx.tenant,
                    approver=approver,
                    approval_key=_key(thread_id, str(destination), diff),
                ),
            )
            if observation.ok:
                delivered = [c.path for c in diff.changes]
            else:
                problem = observation.error.message if observation.error else "delivery failed"
        return _reported(state, str(destination), delivered, problem, why)

    return deliver


def _reported(
    state: RepoState, destination: str, delivered: list[str], problem: str | None, why: str = ""
) -> dict[str, Any]:
    """The report and the last message; `why`: why a rejected patch was not reworked again."""
    outcome = state.get("outcome")
    report: dict[str, object] = {
        "status": "delivered" if problem is None else "not_delivered",
        "problem": problem or "",
        "destination": destination,
        "files": delivered,
        "patch_file": "patch.diff" if problem is None else "",
        "agent": dict(outcome) if outcome else {},
        "tests": dict(state.get("tests") or {}),
        "usage": dict(state.get("usage") or {}),
        "reworks": state.get("reworks", 0),
        "rework": why,
    }
    text = (
        f"Delivered a patch of {len(delivered)} file(s) to {destination}."
        if problem is None
        else f"{problem[:1].upper()}{problem[1:]}."
    )
    if why:
        text += f" {why[:1].upper()}{why[1:]}."
    return {
        "report": report,
        "delivered": delivered,
        "messages": [AIMessage(text, name="deliver")],
    }


def after_tests(state: RepoState, approve: str) -> Literal["approval", "deliver"]:
    """Ask a human under `ask` about a patch (not one sent back already); else deliver/report."""
    changed = (state.get("files") or {}) != (state.get("repo_files") or {})
    asked = approve == "ask" and changed and not sent_back(state)
    return "approval" if asked else "deliver"


def make_repo_rework(deps: TeamDeps) -> Node[RepoState]:
    """The node that sends a rejected patch back to the worker with the human's comment."""

    async def rework(state: RepoState, *, runtime: Runtime[TeamContext]) -> dict[str, Any]:
        """A new message with the comment, one more rework, a fresh ledger scope for the worker."""
        update = rework_update(state)
        runtime.stream_writer({"role": "repo", "event": "rework", "scope": update["scope"]})
        return update

    return rework
