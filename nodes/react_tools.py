"""The ReAct worker's tool step: each call of the model's turn through the gateway, in order.

Every call goes through `ToolGateway.call` (validation, policy, honeypot, approval, ledger), so
an invalid call comes back as the gateway's error for the model to fix and the loop goes on.
The ledger call id is the checkpointed turn number, the call's place in the turn and its tool
(`react_support.ledger_call_id`; the ledger key adds the arguments): after a crash the step
runs again and each completed call is replayed from the ledger, never run twice, even when the
model turn itself was lost with the crash and asked again. The files live in the state (a
`MemoryWorkspace`), so a replayed call's changes are re-applied by the gateway. After the calls
the loop guard (`nodes.loop_guard`) judges the turns since the last backtrack: it may send the
model back (its repeating turns removed from what it sees, one note added) or stop the loop
with a reason.

Calls run one after the other, not in parallel like `langgraph.prebuilt.ToolNode`: a patch
and the test run after it work on the same files.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from typing import Any

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage
from langchain_core.messages.tool import ToolCall
from langgraph.runtime import Runtime

from graphs.context import TeamContext
from graphs.deps import Node, TeamDeps, text_of
from graphs.react_state import Outcome, ReactState, TurnRecord
from nodes.approvers import interrupt_approver
from nodes.loop_guard import Verdict, judge_turns
from nodes.react_support import (
    CATALOGUE,
    FINISH,
    NO_TOOL,
    NOTE,
    backtrack_messages,
    changed_files,
    finish_outcome,
    ledger_call_id,
    name_of,
    observation_text,
    offered,
    turn_record,
    window,
)
from tools.gateway import CallContext
from tools.workspaces import MemoryWorkspace


class _Step:
    """What one tool step adds: messages, turns, and how the loop ended (if it did)."""

    def __init__(self, thought: str, epoch: int) -> None:
        self.thought = thought
        self.epoch = epoch
        self.messages: list[AnyMessage] = []
        self.turns: list[TurnRecord] = []
        self.outcome: Outcome | None = None

    def observed(self, call: ToolCall, text: str, *, ok: bool) -> None:
        """The call's result as the model sees it (cut), and its turn for the loop guard."""
        shown = observation_text(text)
        self.messages.append(
            ToolMessage(
                shown,
                tool_call_id=call["id"] or "",
                name=call["name"],
                status="success" if ok else "error",
            )
        )
        self.turns.append(
            turn_record(
                self.thought, call["name"], call["args"], shown, error=not ok, epoch=self.epoch
            )
        )

    def nudged(self) -> None:
        """A reply without a call: say so, and record a turn that did nothing."""
        self.messages.append(HumanMessage(NO_TOOL, name=NOTE))
        self.turns.append(turn_record(self.thought, "", {}, NO_TOOL, error=True, epoch=self.epoch))

    def finished(self, call: ToolCall) -> bool:
        """`finish`: end the loop with its summary, or show the model what was wrong with it."""
        ended = finish_outcome(call["args"])
        if isinstance(ended, str):
            self.observed(call, ended, ok=False)
            return False
        self.outcome = ended
        self.observed(call, "finished", ok=True)
        return True


def not_offered(tool: str, names: set[str]) -> str:
    """What the model is told about a call of a tool it was not offered (nothing runs)."""
    return f"There is no tool {tool!r} here; use one of: {', '.join(sorted(names))}."


def _last_reply(state: ReactState) -> AIMessage:
    for message in reversed(state.get("messages") or []):
        if isinstance(message, AIMessage):
            return message
    raise ValueError("the tool step found no model turn to act on")


async def _judge(deps: TeamDeps, state: ReactState, step: _Step) -> Verdict:
    """The loop guard's verdict on the turns since the last backtrack, this step's included."""
    epoch = state.get("backtracks", 0)
    turns = window([*(state.get("turns") or []), *step.turns], epoch)
    similarity = deps.similarity()
    if similarity is None:
        return judge_turns(turns, backtracks=epoch)
    return await asyncio.to_thread(judge_turns, turns, backtracks=epoch, similarity=similarity)


def _guarded(state: ReactState, step: _Step, verdict: Verdict) -> dict[str, Any]:
    """The step's update as the verdict shapes it."""
    update: dict[str, Any] = {"messages": step.messages, "turns": step.turns}
    if verdict.state == "backtrack":
        history = list(state.get("messages") or [])
        update["messages"] = backtrack_messages(history, verdict)
        update["backtracks"] = 1
    elif verdict.state == "stop":
        update["outcome"] = {"status": "stopped", "reason": verdict.reason, "summary": ""}
    return update


def make_react_tools(deps: TeamDeps, tools: Collection[str] = CATALOGUE) -> Node[ReactState]:
    """The node that runs the model's calls and judges the loop."""

    async def call_one(
        state: ReactState, ctx: TeamContext, workspace: MemoryWorkspace, index: int, call: ToolCall
    ) -> tuple[str, bool]:
        """One call through the gateway; a held call pauses the graph for a human."""
        gateway = await deps.gateway(ctx)
        call_id = ledger_call_id(state.get("scope", ""), state.get("steps", 0), index, call["name"])
        observation = await gateway.call(
            call["name"],
            call["args"],
            CallContext(
                thread_id=deps.thread_id(),
                tool_call_id=call_id,
                workspace=workspace,
                tenant_id=ctx.tenant,
                limits=deps.sandbox_limits,
                approver=interrupt_approver,
            ),
        )
        return observation.for_model(), observation.ok

    async def act(state: ReactState, *, runtime: Runtime[TeamContext]) -> dict[str, Any]:
        """Run the calls in order; `finish` ends the loop; then ask the loop guard."""
        ctx = deps.run_context(runtime.context)
        reply = _last_reply(state)
        step = _Step(text_of(reply), state.get("backtracks", 0))
        gateway = await deps.gateway(ctx)
        names = {name_of(d) for d in offered(gateway.tool_definitions(ctx.tenant), tools)}
        files = state.get("files") or {}
        workspace = MemoryWorkspace(files)
        if not reply.tool_calls:
            step.nudged()
        for index, call in enumerate(reply.tool_calls):
            if call["name"] == FINISH:
                if step.finished(call):
                    break
            elif call["name"] not in names:
                step.observed(call, not_offered(call["name"], names), ok=False)
            else:
                text, ok = await call_one(state, ctx, workspace, index, call)
                step.observed(call, text, ok=ok)
                event = {"role": "react", "event": "tool", "tool": call["name"], "ok": ok}
                runtime.stream_writer(event)
        update: dict[str, Any] = {"files": changed_files(files, workspace.files)}
        if step.outcome is not None:
            ended = {"messages": step.messages, "turns": step.turns, "outcome": step.outcome}
            return update | ended
        return update | _guarded(state, step, await _judge(deps, state, step))

    return act
