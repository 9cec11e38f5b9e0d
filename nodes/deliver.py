"""Deliver: hands the approved files to the `deliver_files` tool and writes the task report.

Delivery is the team's side effect on the world, so it goes through the tool gateway like any
other tool call: policy and honeypot, the approval (answered by the `approval` step, or asked
with `interrupt()` when the graph has no answer yet), and the ledger, which replays a delivery
that completed before a crash instead of writing again.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, NamedTuple

from langchain_core.messages import AIMessage
from langgraph.runtime import Runtime

from graphs.context import TeamContext
from graphs.deps import Node, TeamDeps
from graphs.state import ApprovalResume, TeamState, files_to_deliver, run_of_delivered
from memory import taskgraph
from memory.reflexion import lesson_record, lessons_from_task
from nodes.approvers import approval_key as key_of_approval
from nodes.approvers import delivery_args, interrupt_approver, recorded_approver
from nodes.inbox import fenced
from tools.gateway import Approver, CallContext, ToolObservation
from tools.workspaces import DirWorkspace

DELIVER_TOOL = "deliver_files"
REPORT_FILE = "REPORT.json"


REJECTED_PREFIX = "human rejected delivery: "


async def _store_lessons(deps: TeamDeps, state: TeamState, ctx: TeamContext, thread_id: str) -> int:
    """Keep what this task learned for later similar tasks (idempotent on replay)."""
    memory = await deps.memory(ctx)
    if memory is None:
        return 0
    rejections = [
        str(m.content).removeprefix(REJECTED_PREFIX)
        for m in state.get("messages", [])
        if m.name == "approval" and str(m.content).startswith(REJECTED_PREFIX)
    ]
    found = lessons_from_task(
        [dict(r) for r in state.get("test_runs", [])],
        [dict(r) for r in state.get("reviews", [])],
        rejections,
    )
    records = [
        lesson_record(
            state["goal"],
            text,
            kind=kind,
            tenant=ctx.tenant,
            task_id=thread_id,
            importance=importance,
        )
        for kind, text, importance in found
    ]
    await asyncio.to_thread(memory.remember_many, records)
    return len(records)


async def _record_in_graph(
    deps: TeamDeps, state: TeamState, ctx: TeamContext, thread_id: str, files: dict[str, str]
) -> None:
    """Errors met, the fixes that resolved them and the libraries used, for later tasks."""
    graph = await deps.memory_graph(ctx)
    if graph is None:
        return
    await asyncio.to_thread(
        taskgraph.record_task,
        graph,
        tenant=ctx.tenant,
        task_id=thread_id,
        goal=state["goal"],
        entry_point=state.get("entry_point"),
        test_runs=state.get("test_runs", []),
        delivered_files=files,
        summaries=taskgraph.summaries_from_messages(state.get("messages", [])),
    )


def build_report(
    state: TeamState,
    delivered: list[str],
    destination: Path | None,
    flags: list[str] | None = None,
) -> dict[str, Any]:
    """The task's final report: what was delivered, how it tested, what it cost."""
    final = run_of_delivered(state)
    usage = state.get("usage") or {"model_calls": 0, "prompt_tokens": 0, "completion_tokens": 0}
    approval = state.get("approval") or {"approved": False, "comment": ""}
    return {
        "status": "delivered" if delivered else "not_delivered",
        "stop_reason": state.get("stop_reason", ""),
        "files": delivered,
        "destination": str(destination) if destination else None,
        "approval": approval,
        "tests": {
            "spec_passed": final["spec_passed"] if final else 0,
            "spec_total": final["spec_total"] if final else 0,
            "team_passed": final["model_passed"] if final else 0,
            "team_total": final["model_total"] if final else 0,
            "error": final["error"] if final else "",
        },
        "iterations": state.get("iteration", 0),
        "steps": state.get("steps", 0),
        "model_calls": usage["model_calls"],
        "prompt_tokens": usage["prompt_tokens"],
        "completion_tokens": usage["completion_tokens"],
        "cost_usd": round(usage.get("cost_usd", 0.0), 6),
        "reviews": len(state.get("reviews", [])),
        "flags": list(flags or []),
    }


async def _deliver_files(
    deps: TeamDeps,
    ctx: TeamContext,
    thread_id: str,
    destination: Path,
    files: dict[str, str],
    report: dict[str, Any],
) -> ToolObservation:
    """One `deliver_files` call through the gateway; the key is stable across a resume."""
    gateway = await deps.gateway(ctx)
    approver: Approver = interrupt_approver
    approval_key: str | None = None
    if ctx.approve == "ask":
        # Only the answer the gateway ledgered for exactly these files and this folder counts;
        # the state's `approval` may have been written by a client. Without one, ask now.
        approval_key = key_of_approval(thread_id, str(destination), files)
    else:
        policy = ApprovalResume(approved=True, comment="approved by policy (auto)")
        approver = recorded_approver(policy, "policy (auto)")
    workspace = await asyncio.to_thread(DirWorkspace.create, destination)
    outputs = {**files, REPORT_FILE: json.dumps(report, indent=2)}
    summary = str(report.get("stop_reason") or "the reviewed solution")
    return await gateway.call(
        DELIVER_TOOL,
        delivery_args(outputs, summary),
        CallContext(
            thread_id=thread_id,
            tool_call_id="deliver",
            workspace=workspace,
            tenant_id=ctx.tenant,
            approver=approver,
            approval_key=approval_key,
        ),
    )


HONEYPOT_FLAG = "honeypot:"
FLAGGED_NOT_AUTO = (
    "not delivered: the task tripped the honeypot, so a person must approve its delivery "
    "(run it with approval 'ask')"
)


class _Outcome(NamedTuple):
    """What a delivery attempt did; nothing delivered when it was not approved or failed."""

    delivered: list[str]
    destination: Path | None
    flags: list[str]
    problem: str = ""
    replayed: bool = False


async def _write(
    deps: TeamDeps, state: TeamState, ctx: TeamContext, thread_id: str, flags: list[str]
) -> _Outcome:
    """Deliver the best candidate's files if approved (the report inside is the interim one)."""
    files = files_to_deliver(state)
    approval = state.get("approval") or {"approved": False, "comment": ""}
    if not (approval["approved"] and files and ctx.approve != "deny"):
        return _Outcome([], None, flags)
    if ctx.approve == "auto" and any(flag.startswith(HONEYPOT_FLAG) for flag in flags):
        # Code that tripped the honeypot goes out only after a person has seen it.
        return _Outcome([], None, flags, FLAGGED_NOT_AUTO)
    destination = deps.destination(ctx, thread_id, state.get("destination"))
    report = build_report(state, sorted(files), destination, flags)
    observation = await _deliver_files(deps, ctx, thread_id, destination, files, report)
    if observation.ok:
        return _Outcome(sorted(files), destination, flags, replayed=observation.replayed)
    problem = observation.error.message if observation.error else "delivery failed"
    return _Outcome([], None, [*flags, *observation.flags], problem)


def final_reply(report: dict[str, Any], files: dict[str, str], reason: str) -> str:
    """The team's last chat message: delivered or not (and why), how it tested, the code.

    A chat client (Agent Chat UI, Studio's chat) shows the task's outcome from this message
    alone, so it carries the code itself, not only where it went.
    """
    tests = report["tests"]
    checks = (
        f"goal examples {tests['spec_passed']}/{tests['spec_total']}, "
        f"team tests {tests['team_passed']}/{tests['team_total']}"
    )
    if report["files"]:
        head = f"deliver: wrote {', '.join(report['files'])} to {report['destination']} ({checks})"
    else:
        head = f"deliver: nothing written ({reason or 'not approved'}); best version: {checks}"
    blocks = [
        fenced(f"# {path}\n{text}", "python" if path.endswith(".py") else "")
        for path, text in sorted(files.items())
    ]
    return "\n\n".join([head, *blocks])


def make_deliver(deps: TeamDeps) -> Node[TeamState]:
    """The node that delivers the approved files and writes the task's report."""

    async def deliver(state: TeamState, *, runtime: Runtime[TeamContext]) -> dict[str, Any]:
        """Deliver the best candidate's files when approved; always produce the report."""
        ctx = deps.run_context(runtime.context)
        thread_id = deps.thread_id()
        files = files_to_deliver(state)
        approval = state.get("approval") or {"approved": False, "comment": ""}
        gateway = await deps.gateway(ctx)
        outcome = await _write(deps, state, ctx, thread_id, await gateway.flags(thread_id))
        delivered, destination, problem = outcome.delivered, outcome.destination, outcome.problem
        if delivered:
            runtime.stream_writer(
                {"role": "deliver", "event": "tool", "replayed": outcome.replayed}
            )
        report = build_report(state, delivered, destination, outcome.flags)
        if problem:
            report["delivery_error"] = problem
        stored = await _store_lessons(deps, state, ctx, thread_id)
        if stored:
            runtime.stream_writer({"role": "deliver", "event": "stored lessons", "count": stored})
        await _record_in_graph(deps, state, ctx, thread_id, files)
        runtime.stream_writer({"role": "deliver", "event": report["status"], "files": delivered})
        reason = problem or approval["comment"] or state.get("stop_reason", "")
        text = final_reply(report, files, reason)
        return {
            "delivered": delivered,
            "report": report,
            "steps": 1,
            "messages": [AIMessage(text, name="deliver")],
        }

    return deliver
