"""Coder: writes or repairs the workspace files through structured edits."""

from __future__ import annotations

import asyncio
from pathlib import PurePosixPath
from typing import Any

from langchain_core.messages import AIMessage
from langgraph.runtime import Runtime
from pydantic import BaseModel, Field, field_validator, model_validator

from graphs.context import TeamContext
from graphs.deps import ModelOutputError, Node, TeamDeps
from graphs.state import TeamState
from memory import taskgraph
from nodes.prompt_budget import build_prompt
from nodes.prompting import Section, goal_section
from tools.checks import parse_quietly

MAIN_FILE = "solution.py"
FIXES_K = 3


class FileEdit(BaseModel):
    """The whole new content of one workspace file."""

    path: str = Field(min_length=1, max_length=200)
    content: str = Field(min_length=1, max_length=60_000)

    @field_validator("path")
    @classmethod
    def _relative(cls, value: str) -> str:
        path = PurePosixPath(value.strip())
        if path.is_absolute() or ".." in path.parts or not path.name:
            raise ValueError(f"path must be relative inside the workspace: {value!r}")
        return str(path)

    @model_validator(mode="after")
    def _python_parses(self) -> FileEdit:
        if self.path.endswith(".py"):
            try:
                parse_quietly(self.content)
            except SyntaxError as exc:
                raise ValueError(f"{self.path} line {exc.lineno}: SyntaxError: {exc.msg}") from exc
        return self


class CodeEdit(BaseModel):
    """The coder's action: files to write and a one-line summary."""

    files: list[FileEdit] = Field(min_length=1, max_length=3)
    summary: str = Field(default="", max_length=500)


def _sections(state: TeamState) -> tuple[list[Section], list[Section]]:
    """(pinned, required) parts of the coder's prompt: a repair needs the code and failures."""
    pinned = [goal_section(state)]
    if state.get("entry_point"):
        pinned.append(Section("", f"The function to implement is `{state['entry_point']}`."))
    required: list[Section] = []
    current = state.get("files", {}).get(MAIN_FILE)
    if current and state.get("feedback"):
        required.append(Section(f"Current {MAIN_FILE}", current, keep="both"))
    if feedback := state.get("feedback"):
        # Ground-truth failures come first in the feedback: keep its head when shortened.
        required.append(Section("Fix these problems", feedback, keep="head"))
    return pinned, required


async def _known_fixes(deps: TeamDeps, state: TeamState, ctx: TeamContext) -> list[str]:
    """For a repair: how the same errors were resolved before (the memory graph)."""
    runs = state.get("test_runs", [])
    if not state.get("feedback") or not runs:
        return []
    graph = await deps.memory_graph(ctx)
    if graph is None:
        return []
    errors = taskgraph.run_errors(runs[-1])
    return await asyncio.to_thread(taskgraph.known_fixes, graph, errors, ctx.tenant, FIXES_K)


async def _page_in_lessons(
    deps: TeamDeps, state: TeamState, ctx: TeamContext, runtime: Runtime[TeamContext]
) -> list[str]:
    """Lessons of earlier similar tasks (the coder pages them in once per task)."""
    lessons = await deps.lessons(ctx, state["goal"])
    if lessons:
        runtime.stream_writer({"role": "coder", "event": "recalled lessons", "count": len(lessons)})
    return lessons


def _failed(update: dict[str, Any], exc: ModelOutputError, attempt: int) -> dict[str, Any]:
    """The attempt counts and costs, but the task goes on with the code it has."""
    return {
        **update,
        "iteration": 1,
        "steps": 1,
        "usage": exc.usage,
        "messages": [
            AIMessage(
                f"coder: no valid edit ({exc})"[:600],
                name="coder",
                additional_kwargs={"iteration": attempt},
            )
        ],
    }


def make_coder(deps: TeamDeps) -> Node[TeamState]:
    """The node that writes the next version of the code."""

    async def coder(state: TeamState, *, runtime: Runtime[TeamContext]) -> dict[str, Any]:
        """Produce the next version of the code from the goal and the latest feedback."""
        ctx = deps.run_context(runtime.context)
        update: dict[str, Any] = {}
        if "lessons" not in state:
            state = {**state, "lessons": await _page_in_lessons(deps, state, ctx, runtime)}
            update["lessons"] = state["lessons"]
        runtime.stream_writer(
            {"role": "coder", "event": "writing", "iteration": state["iteration"]}
        )
        attempt = state["iteration"] + 1
        pinned, required = _sections(state)
        fixes = await _known_fixes(deps, state, ctx)
        built = await build_prompt(
            deps,
            "coder",
            state,
            ctx,
            pinned=pinned,
            required=required,
            memories=[*fixes, *state.get("lessons", [])],
        )
        try:
            edit, usage = await deps.ask_json(
                await deps.model(ctx),
                built.system,
                built.user,
                CodeEdit,
                # A repair decoded greedily tends to return the very code that failed.
                sample=bool(state.get("feedback")),
            )
        except ModelOutputError as exc:
            runtime.stream_writer({"role": "coder", "event": "failed", "error": str(exc)[:300]})
            return _failed(update, exc, attempt)
        files = {item.path: item.content for item in edit.files}
        summary = edit.summary or f"wrote {', '.join(sorted(files))}"
        runtime.stream_writer({"role": "coder", "event": "wrote", "files": sorted(files)})
        note = AIMessage(
            f"coder: {summary}", name="coder", additional_kwargs={"iteration": attempt}
        )
        return {
            **update,
            "files": files,
            "iteration": 1,
            "steps": 1,
            "usage": usage,
            "feedback": "",
            "messages": [note],
        }

    return coder
