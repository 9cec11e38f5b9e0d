"""State of the ReAct worker and of the repository agent: turns, outcome, and the repository.

The worker's transcript is `messages` (`add_messages`, so the loop guard can drop turns with
`RemoveMessage`); every tool step also leaves a compact `TurnRecord` (thought, canonical
action, observation) that the loop guard judges. Both lists are what a checkpoint stores, so
the turns are bounded. The files are the task's workspace as a `MemoryWorkspace` sees them
(`apply_changes`: None deletes, '' is an empty file), checkpointed with the loop: a resumed
worker sees the files its completed tool calls produced, and the gateway's ledger replays those
calls instead of running them again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Literal, NotRequired

from langchain_core.messages import AnyMessage
from langgraph.graph.message import add_messages
from typing_extensions import TypedDict

from graphs.state import ApprovalAnswer, Usage, add_int, add_usage, union_sorted

MAX_KEPT_TURNS = 64
"""Turns a checkpoint keeps; the loop guard reads the window since the last backtrack."""


class TurnRecord(TypedDict):
    """One tool step as the loop guard judges it (`nodes.loop_guard.Turn`, as plain data)."""

    thought: str
    action: str
    """Tool name and canonical JSON of its arguments; '' when the reply called no tool."""
    observation: str
    error: bool
    epoch: int
    """Backtracks before this turn: the loop guard judges the turns of the current epoch."""


class Outcome(TypedDict):
    """How the loop ended: the model finished, or a limit or the loop guard stopped it."""

    status: Literal["finished", "stopped"]
    reason: str
    summary: str


def apply_changes(
    left: Mapping[str, str] | None, right: Mapping[str, str | None] | None
) -> dict[str, str]:
    """Write each changed file; None deletes.

    An empty string is a file's content, not a deletion (`graphs.state.merge_files` deletes on
    ''): repositories hold empty files (`__init__.py`).
    """
    merged = dict(left or {})
    for path, content in (right or {}).items():
        if content is None:
            merged.pop(path, None)
        else:
            merged[path] = content
    return merged


def append_turns(left: list[TurnRecord] | None, right: list[TurnRecord] | None) -> list[TurnRecord]:
    """Append the new turns, keeping the newest `MAX_KEPT_TURNS`."""
    return [*(left or []), *(right or [])][-MAX_KEPT_TURNS:]


class ReactInput(TypedDict):
    """What starts a worker: a goal and the workspace's files, or a chat saying the goal."""

    goal: NotRequired[str]
    files: NotRequired[dict[str, str]]
    messages: NotRequired[Annotated[list[AnyMessage], add_messages]]
    scope: NotRequired[str]


class ReactState(TypedDict):
    """The ReAct worker's own state."""

    goal: str
    scope: NotRequired[str]
    """Which run of the worker this is within its task (part of every ledger call id)."""
    messages: Annotated[list[AnyMessage], add_messages]
    """The conversation the model sees: goal, its tool calls, their observations, notes."""
    files: Annotated[dict[str, str], apply_changes]
    turns: Annotated[list[TurnRecord], append_turns]
    steps: Annotated[int, add_int]
    """Model turns taken; the step limit (`Limits.max_steps`) bounds them."""
    backtracks: Annotated[int, add_int]
    usage: Annotated[Usage, add_usage]
    outcome: NotRequired[Outcome]


class RepoInput(TypedDict):
    """What a repository task starts from: a goal and the repository's files.

    `repo_files` is the original snapshot the patch is computed against; when only `files` is
    given it is taken as the original too.
    """

    goal: NotRequired[str]
    repo_files: NotRequired[dict[str, str]]
    files: NotRequired[dict[str, str]]
    messages: NotRequired[Annotated[list[AnyMessage], add_messages]]


class RepoTests(TypedDict):
    """The repository's test suite run once on the worker's files."""

    tool: str
    ok: bool
    passed: int
    failed: int
    summary: str


class RepoState(TypedDict):
    """The repository agent: a worker's loop, the repository's tests, approval, delivery."""

    goal: str
    repo_files: NotRequired[dict[str, str]]
    """The repository as it was given: the patch is computed against it (written once)."""
    files: dict[str, str]
    """The working copy: the worker's files when it returns (the whole map, replaced)."""
    messages: Annotated[list[AnyMessage], add_messages]
    """The worker's conversation (its calls and their results), then the agent's report."""
    usage: Annotated[Usage, add_usage]
    steps: Annotated[int, add_int]
    outcome: NotRequired[Outcome]
    tests: NotRequired[RepoTests]
    approval: NotRequired[ApprovalAnswer | None]
    destination: NotRequired[str]
    delivered: NotRequired[list[str]]
    report: NotRequired[dict[str, object]]
    scope: NotRequired[str]
    """The worker's ledger scope, passed into the subgraph: '' on its first run, `rework<n>` on
    the n-th rework (its turn numbers restart, so its ledger call ids must differ)."""
    reworks: NotRequired[Annotated[int, add_int]]
    """Times a rejected patch went back to the worker; `Limits.max_iterations` bounds them."""
    rejected_patches: NotRequired[Annotated[list[str], union_sorted]]
    """Digests of the patches sent back: the same patch after a rework is not asked about."""
