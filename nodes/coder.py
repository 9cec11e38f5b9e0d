"""Coder: writes or repairs the workspace files through structured edits."""

from __future__ import annotations

import asyncio
from pathlib import PurePosixPath
from typing import Any

from langchain_core.messages import AIMessage
from langgraph.config import get_config
from langgraph.runtime import Runtime
from pydantic import BaseModel, Field, field_validator, model_validator

from graphs.context import TeamContext
from graphs.state import TeamState
from memory import taskgraph
from memory.reflexion import lesson_texts
from nodes.prompting import Section, build_prompt, goal_section
from service import deps
from service.models import StructuredOutputError, structured_call
from service.settings import get_settings
from tools.checks import parse_quietly

MAIN_FILE = "solution.py"
LESSONS_K = 3
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


async def _page_in_lessons(state: TeamState, ctx: TeamContext, task_id: str) -> list[str]:
    memory = await deps.get_memory(ctx)
    if memory is None:
        return []
    hits = await asyncio.to_thread(memory.lessons, state["goal"], ctx.tenant, LESSONS_K)
    return lesson_texts(hits, exclude_task=task_id)


async def _known_fixes(state: TeamState, ctx: TeamContext) -> list[str]:
    """For a repair: how the same errors were resolved before (the memory graph)."""
    runs = state.get("test_runs", [])
    if not state.get("feedback") or not runs:
        return []
    graph = await deps.get_memory_graph(ctx)
    if graph is None:
        return []
    errors = taskgraph.run_errors(runs[-1])
    return await asyncio.to_thread(taskgraph.known_fixes, graph, errors, ctx.tenant, FIXES_K)


async def coder(state: TeamState, runtime: Runtime[TeamContext]) -> dict[str, Any]:
    """Produce the next version of the code from the goal and the latest feedback."""
    ctx = deps.run_context(runtime.context)
    update: dict[str, Any] = {}
    if "lessons" not in state:
        thread_id = str(get_config().get("configurable", {}).get("thread_id", ""))
        state = {**state, "lessons": await _page_in_lessons(state, ctx, thread_id)}
        update["lessons"] = state["lessons"]
        if state["lessons"]:
            runtime.stream_writer(
                {"role": "coder", "event": "recalled lessons", "count": len(state["lessons"])}
            )
    runtime.stream_writer({"role": "coder", "event": "writing", "iteration": state["iteration"]})
    attempt = state["iteration"] + 1
    pinned, required = _sections(state)
    fixes = await _known_fixes(state, ctx)
    built = await build_prompt(
        "coder",
        state,
        ctx,
        pinned=pinned,
        required=required,
        memories=[*fixes, *state.get("lessons", [])],
    )
    try:
        edit, usage = await structured_call(
            await deps.get_model(ctx),
            built.system,
            built.user,
            CodeEdit,
            retries=get_settings().structured_retries,
            # A repair decoded greedily tends to return the very code that failed.
            sample=bool(state.get("feedback")),
        )
    except StructuredOutputError as exc:
        # The attempt counts and costs, but the task goes on with the code it has.
        runtime.stream_writer({"role": "coder", "event": "failed", "error": str(exc)[:300]})
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
    files = {item.path: item.content for item in edit.files}
    summary = edit.summary or f"wrote {', '.join(sorted(files))}"
    runtime.stream_writer({"role": "coder", "event": "wrote", "files": sorted(files)})
    return {
        **update,
        "files": files,
        "iteration": 1,
        "steps": 1,
        "usage": usage,
        "feedback": "",
        "messages": [
            AIMessage(f"coder: {summary}", name="coder", additional_kwargs={"iteration": attempt})
        ],
    }
