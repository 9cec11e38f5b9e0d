"""The plan as the planner answers it, its validation, and the wave scheduler: pure functions.

A plan is a DAG of subtasks. It is refused (with every reason, so the planner can fix them in
one retry) when ids repeat, a dependency names no subtask, the dependencies form a cycle (the
cycle is spelled out), a file is neither in the workspace nor a new file under an existing
folder, a check's test file is unknown or its snippet does not parse, or it has more subtasks
than the deployment allows. Waves are the DAG's layers: a subtask runs once every subtask it
depends on is done, and a subtask whose dependency failed never runs.
"""

from __future__ import annotations

import ast
import posixpath
from collections.abc import Collection, Mapping, Sequence
from typing import Literal

from pydantic import BaseModel, Field

from graphs.plan_state import SubtaskResult, SubtaskSpec

DEFAULT_MAX_SUBTASKS = 6


class Check(BaseModel):
    """What shows a subtask done."""

    kind: Literal["test", "python"] = Field(
        description="'test': a test id of the repository's suite; 'python': a snippet."
    )
    target: str = Field(
        min_length=1,
        max_length=2000,
        description="The test id ('tests/test_x.py::test_y' or a test file), or python code "
        "that exits non-zero (an assert) unless the subtask is done.",
    )


class Subtask(BaseModel):
    """One step of the plan."""

    id: str = Field(min_length=1, max_length=40, description="A short unique id, e.g. 's1'.")
    goal: str = Field(min_length=1, max_length=2000, description="What this step changes.")
    files: list[str] = Field(
        min_length=1, max_length=20, description="The files this step edits or creates."
    )
    depends_on: list[str] = Field(
        default_factory=list, max_length=20, description="Ids of steps that must be done first."
    )
    check: Check


class Plan(BaseModel):
    """The planner's answer: the subtasks, in the order they should be considered."""

    subtasks: list[Subtask] = Field(min_length=1, max_length=50)


class Revision(BaseModel):
    """A re-planned subtask: a new goal (and files) for running it again on the merged files."""

    id: str = Field(min_length=1, max_length=40)
    goal: str = Field(min_length=1, max_length=2000)
    files: list[str] = Field(default_factory=list, max_length=20)


class Replan(BaseModel):
    """The planner's answer to a conflict: one revision per re-planned subtask."""

    revisions: list[Revision] = Field(min_length=1, max_length=50)


def specs_of(plan: Plan) -> list[SubtaskSpec]:
    """The plan as state data."""
    return [
        {
            "id": s.id,
            "goal": s.goal,
            "files": list(s.files),
            "depends_on": list(s.depends_on),
            "check": {"kind": s.check.kind, "target": s.check.target},
        }
        for s in plan.subtasks
    ]


def find_cycle(edges: Mapping[str, Sequence[str]]) -> list[str] | None:
    """A dependency cycle as a path that ends where it starts (None: the graph is a DAG)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in edges.get(node, ()):
            if state.get(dep) == 1:
                return [*path[path.index(dep) :], dep]
            if dep in edges and dep not in state and (cycle := visit(dep)) is not None:
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in edges:
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def known_path(path: str, files: Collection[str]) -> bool:
    """A workspace file, or a new file under a folder the workspace already has."""
    if path in files:
        return True
    if path.startswith("/") or ".." in path.split("/") or not path.strip():
        return False
    folder = posixpath.dirname(path)
    return folder == "" or any(f.startswith(f"{folder}/") for f in files)


def _check_problem(subtask: Subtask, files: Collection[str], planned: set[str]) -> str | None:
    check = subtask.check
    if check.kind == "python":
        try:
            ast.parse(check.target)
        except SyntaxError as exc:
            return f"subtask {subtask.id!r}: its check is not valid python ({exc.msg})"
        return None
    test_file = check.target.partition("::")[0]
    if test_file not in files and test_file not in planned:
        return f"subtask {subtask.id!r}: its check names an unknown test file {test_file!r}"
    return None


def plan_problems(plan: Plan, files: Collection[str], max_subtasks: int) -> list[str]:
    """Every reason the plan cannot run (empty: it is valid)."""
    problems: list[str] = []
    ids = [s.id for s in plan.subtasks]
    if len(ids) > max_subtasks:
        problems.append(f"{len(ids)} subtasks, at most {max_subtasks} are allowed")
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    if duplicated:
        problems.append(f"duplicate subtask ids: {', '.join(duplicated)}")
    planned = {path for s in plan.subtasks for path in s.files}
    for subtask in plan.subtasks:
        for dep in subtask.depends_on:
            if dep not in ids:
                problems.append(f"subtask {subtask.id!r} depends on unknown subtask {dep!r}")
        unknown = [p for p in subtask.files if not known_path(p, files)]
        if unknown:
            problems.append(
                f"subtask {subtask.id!r} names unknown files (not in the workspace, nor new "
                f"files under an existing folder): {', '.join(unknown)}"
            )
        if (problem := _check_problem(subtask, files, planned)) is not None:
            problems.append(problem)
    cycle = find_cycle({s.id: s.depends_on for s in plan.subtasks})
    if cycle is not None:
        path = " -> ".join(cycle)
        problems.append(f"the dependencies form a cycle: {path} (each depends on the next)")
    return problems


def waves(plan: Sequence[SubtaskSpec]) -> list[list[str]]:
    """The DAG's layers, in plan order within a layer (a valid, acyclic plan)."""
    done: set[str] = set()
    layers: list[list[str]] = []
    left = list(plan)
    while left:
        layer = [s["id"] for s in left if set(s["depends_on"]) <= done]
        if not layer:
            raise ValueError("the plan has a cycle")
        layers.append(layer)
        done.update(layer)
        left = [s for s in left if s["id"] not in done]
    return layers


def ready(plan: Sequence[SubtaskSpec], results: Mapping[str, SubtaskResult]) -> list[str]:
    """The subtasks to send now: not run yet (or re-planned), every dependency done."""
    done = {i for i, r in results.items() if r["status"] == "done"}
    waiting = [
        s for s in plan if s["id"] not in results or results[s["id"]]["status"] == "replanned"
    ]
    return [s["id"] for s in waiting if set(s["depends_on"]) <= done]


def blocked(plan: Sequence[SubtaskSpec], results: Mapping[str, SubtaskResult]) -> list[str]:
    """Subtasks that never ran because a subtask they depend on did not get done."""
    return [s["id"] for s in plan if s["id"] not in results]
