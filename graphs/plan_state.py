"""State of the Plan-and-Solve agent: a validated plan, its waves, and what each subtask did.

The plan is plain data (`SubtaskSpec`) so a checkpoint stores it as the planner returned it.
Subtasks of one wave run in parallel (`Send` to `solve`), each on its own copy of the wave's
base files; they report through `results` (`merge_results`: one entry per subtask id, the newest
wins), never by writing `files` — two parallel writes to one file map would be lost or refused.
The merge step alone replaces `files`, with the wave's changes merged hunk by hunk.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Literal, NotRequired

from langchain_core.messages import AnyMessage
from langgraph.graph.message import add_messages
from typing_extensions import TypedDict

from graphs.react_state import Outcome
from graphs.state import Usage, add_int, add_usage


class CheckSpec(TypedDict):
    """What shows a subtask done: a test of the repository's suite, or a python snippet."""

    kind: Literal["test", "python"]
    target: str


class SubtaskSpec(TypedDict):
    """One node of the plan's DAG."""

    id: str
    goal: str
    files: list[str]
    depends_on: list[str]
    check: CheckSpec


SubtaskStatus = Literal["done", "failed", "conflict", "replanned"]


class SubtaskResult(TypedDict):
    """What one run of a subtask left: its changes against the wave's base files, and its check.

    `changes` maps a path to its text after the subtask (None: deleted); `patch` is the same as
    a unified diff, for people.
    """

    id: str
    status: SubtaskStatus
    wave: int
    attempt: int
    summary: str
    changes: dict[str, str | None]
    patch: str
    check: str
    """What the check said ('' when it did not run)."""


class Conflict(TypedDict):
    """Two subtasks of one wave changed overlapping lines of one file."""

    path: str
    kept: str
    """The earlier subtask (plan order), whose change was merged."""
    dropped: str
    """The later one, whose change was not merged: it is re-planned."""
    lines: str
    """The overlapping line ranges of the base file, e.g. '3-4 and 4-6'."""


def merge_results(
    left: Mapping[str, SubtaskResult] | None, right: Mapping[str, SubtaskResult] | None
) -> dict[str, SubtaskResult]:
    """One result per subtask id; a later run of a subtask replaces the earlier one."""
    return {**(left or {}), **(right or {})}


class PlanInput(TypedDict):
    """What starts the agent: like the repository agent's input, a goal and the files."""

    goal: NotRequired[str]
    repo_files: NotRequired[dict[str, str]]
    files: NotRequired[dict[str, str]]
    messages: NotRequired[Annotated[list[AnyMessage], add_messages]]


class SolveInput(TypedDict):
    """The `Send` payload of one subtask: the subtask and the wave's base files (its copy)."""

    subtask: SubtaskSpec
    files: dict[str, str]
    wave: int
    attempt: int


class PlanState(TypedDict):
    """The Plan-and-Solve agent's own state."""

    goal: str
    repo_files: NotRequired[dict[str, str]]
    """The files as they were given (written once)."""
    files: dict[str, str]
    """The merged working copy: replaced by the merge step after each wave."""
    messages: Annotated[list[AnyMessage], add_messages]
    plan: NotRequired[list[SubtaskSpec]]
    results: Annotated[dict[str, SubtaskResult], merge_results]
    wave: Annotated[int, add_int]
    """Waves dispatched so far."""
    conflicts: NotRequired[list[Conflict]]
    """The conflicts of the last merge (replaced by each merge)."""
    usage: Annotated[Usage, add_usage]
    steps: Annotated[int, add_int]
    outcome: NotRequired[Outcome]
