"""What the ReAct worker's nodes share: the tools it offers, `finish`, limits, turns and routes.

The worker offers the registry's catalogue tools as the gateway lists them for the tenant (so
the policy decides what the model even sees), plus one action of its own, `finish`, which ends
the loop with a summary and runs nothing. Everything here is a pure function of its arguments;
the routers are table-tested.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Mapping, Sequence
from typing import Literal

from langchain_core.messages import (
    AnyMessage,
    BaseMessage,
    HumanMessage,
    RemoveMessage,
    trim_messages,
)
from langchain_core.messages.utils import count_tokens_approximately
from pydantic import BaseModel, Field, JsonValue, ValidationError

from graphs.deps import Limits
from graphs.react_state import Outcome, ReactState, TurnRecord
from nodes.loop_guard import Turn, Verdict, action_key

FINISH = "finish"
CATALOGUE: tuple[str, ...] = (
    "list_files",
    "read_file",
    "apply_patch",
    "write_file",
    "run_repo_tests",
    "run_tests",
    "run_python",
    "search_memory",
)
"""The tools a worker may be offered, in the order it sees them (those the registry has and the
tenant's policy allows). Delivery is not among them: it is the repository graph's own step,
after a human approved."""
OBSERVATION_CHARS = 4000
"""An observation's text the model sees at most (the rest is cut, with a note)."""
GOAL = "goal"
GUARD_NOTE = "loop_guard"
"""The name of the loop guard's note: the messages after it are the current epoch's."""
NOTE = "react_note"
"""The name of the worker's own reminders (a reply that called no tool)."""
NO_TOOL = (
    "Your reply called no tool. Every reply must be exactly one tool call; call finish when the "
    "goal is met."
)


class FinishArgs(BaseModel):
    """The `finish` action: the loop ends with this summary."""

    summary: str = Field(
        min_length=1,
        max_length=4000,
        description="What you changed and how you checked it, or why you stopped.",
    )


def finish_definition() -> dict[str, JsonValue]:
    """The OpenAI-style definition of `finish`, shown beside the gateway's tools."""
    return {
        "type": "function",
        "function": {
            "name": FINISH,
            "description": "End the work: the goal is met (or cannot be), with a summary.",
            "parameters": FinishArgs.model_json_schema(),
        },
    }


def name_of(definition: Mapping[str, JsonValue]) -> str:
    """A definition's tool name."""
    function = definition.get("function")
    return str(function.get("name", "")) if isinstance(function, dict) else ""


def offered(
    definitions: Sequence[Mapping[str, JsonValue]], allowed: Collection[str] = CATALOGUE
) -> list[dict[str, JsonValue]]:
    """The gateway's definitions of the `allowed` tools, in catalogue order, then `finish`."""
    by_name = {name_of(d): dict(d) for d in definitions}
    order = [name for name in CATALOGUE if name in allowed]
    order += sorted(name for name in allowed if name not in CATALOGUE)
    return [by_name[name] for name in order if name in by_name] + [finish_definition()]


def ledger_call_id(scope: str, step: int, index: int, tool: str) -> str:
    """The gateway call id of the `index`-th call (to `tool`) of model turn `step`.

    Built from the checkpointed turn number, not from the model's random tool call id: a process
    killed before the model turn's checkpoint was written asks the model again, and the same
    call at the same turn (the ledger key holds the arguments too) must find the recorded result
    instead of running a second time. `scope` tells apart the runs of a worker within one task
    (the repository agent numbers them); the checkpoint namespace is left out for the same
    reason as the model's id: a task id changes when the checkpoint before it was lost.
    """
    prefix = f"react-{scope}" if scope else "react"
    return f"{prefix}-{step}-{index}-{tool}"


def finish_outcome(args: object) -> Outcome | str:
    """The outcome a `finish` call ends with, or the error to show the model."""
    try:
        parsed = FinishArgs.model_validate(args)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}"
            for e in exc.errors(include_url=False)
        )
        return f"Invalid arguments for finish: {problems}. Call finish with a summary."
    return {"status": "finished", "reason": "the agent finished", "summary": parsed.summary}


def over_limits(state: ReactState, limits: Limits) -> str | None:
    """Why the loop may not take another model turn (None while it may)."""
    if limits.stop:
        return limits.stop
    steps = state.get("steps", 0)
    if steps >= limits.max_steps:
        return f"step limit reached: {steps} model turns (max_steps {limits.max_steps})"
    usage = state.get("usage")
    spent = usage["prompt_tokens"] + usage["completion_tokens"] if usage else 0
    if spent >= limits.token_budget:
        return f"token budget spent: {spent} of {limits.token_budget} tokens"
    return None


def opening(goal: str, files: Mapping[str, str]) -> HumanMessage:
    """The first message: the goal and which files the workspace holds."""
    listing = "\n".join(f"- {path}" for path in sorted(files)[:200]) or "(none)"
    more = f"\n… and {len(files) - 200} more" if len(files) > 200 else ""
    return HumanMessage(f"Goal: {goal}\n\nFiles in the workspace:\n{listing}{more}", name=GOAL)


def reserved(system: BaseMessage, tools: Sequence[Mapping[str, JsonValue]]) -> int:
    """Tokens the system prompt and the tool definitions take, estimated high.

    JSON schemas tokenize at about three characters a token.
    """
    return count_tokens_approximately([system]) + len(json.dumps(list(tools))) // 3


def visible(messages: Sequence[AnyMessage], budget: int) -> list[BaseMessage]:
    """The conversation the model sees under `budget` tokens: the goal, then the newest turns.

    The opening human messages are kept whole; the rest is cut at an AI message, so a tool
    result never appears without the call it answers.
    """
    lead = next((i for i, m in enumerate(messages) if m.type != "human"), len(messages))
    head = list(messages[:lead])
    rest = list(messages[len(head) :])
    kept = trim_messages(
        rest,
        max_tokens=max(budget - count_tokens_approximately(head), 256),
        token_counter=count_tokens_approximately,
        strategy="last",
        start_on="ai",
        allow_partial=False,
    )
    return [*head, *kept]


def changed_files(before: Mapping[str, str], after: Mapping[str, str]) -> dict[str, str | None]:
    """What a step changed, for `graphs.react_state.apply_changes` (None: deleted)."""
    changes: dict[str, str | None] = {p: c for p, c in after.items() if before.get(p) != c}
    changes.update({p: None for p in before if p not in after})
    return changes


def observation_text(text: str) -> str:
    """An observation as the model sees it: cut to `OBSERVATION_CHARS`."""
    if len(text) <= OBSERVATION_CHARS:
        return text
    return text[:OBSERVATION_CHARS] + f"… ({len(text) - OBSERVATION_CHARS} more characters cut)"


def turn_record(
    thought: str, tool: str, args: object, observation: str, *, error: bool, epoch: int
) -> TurnRecord:
    """One tool step as the loop guard reads it; `tool` '' for a reply without a call."""
    action = ""
    if tool:
        action = (
            action_key(tool, args)
            if isinstance(args, Mapping)
            else f"{tool} {json.dumps(args, default=str)}"
        )
    return {
        "thought": thought,
        "action": action,
        "observation": observation,
        "error": error,
        "epoch": epoch,
    }


def window(turns: Sequence[TurnRecord], epoch: int) -> list[Turn]:
    """The turns since the last backtrack, as the loop guard takes them."""
    return [
        Turn(t["thought"], t["action"], t["observation"], t["error"])
        for t in turns
        if t["epoch"] == epoch
    ]


def backtrack_messages(messages: Sequence[AnyMessage], verdict: Verdict) -> list[BaseMessage]:
    """Drop the turns since the last backtrack (or since the goal) and say what to avoid."""
    start = 0
    for index, message in enumerate(messages):
        if message.name in (GOAL, GUARD_NOTE) or (index == 0 and message.type == "human"):
            start = index + 1
    dropped: list[BaseMessage] = [RemoveMessage(id=m.id) for m in messages[start:] if m.id]
    note = HumanMessage(
        f"You {verdict.reason}. Those turns were removed. Do not repeat that approach: "
        "try a different one (read another file, change the code differently, or finish).",
        name=GUARD_NOTE,
    )
    return [*dropped, note]


def after_agent(state: ReactState) -> Literal["tools", "__end__"]:
    """After a model turn: run its calls, unless the loop already ended."""
    return "__end__" if "outcome" in state else "tools"


def after_tools(state: ReactState) -> Literal["agent", "__end__"]:
    """After the calls: back to the model, unless `finish` or the loop guard ended the loop."""
    return "__end__" if "outcome" in state else "agent"


def tests_call_id(files: Mapping[str, str]) -> str:
    """The ledger id of a repository test run: keyed by the files, so a run made is replayed."""
    digest = hashlib.sha256(repr(sorted(files.items())).encode()).hexdigest()[:16]
    return f"repo-tests-{digest}"
