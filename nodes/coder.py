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
from memory.reflexion import lesson_texts
from nodes.prompts import load_prompt
from service import deps
from service.models import StructuredOutputError, structured_call
from service.settings import get_settings
from tools.checks import parse_quietly

MAIN_FILE = "solution.py"
LESSONS_K = 3


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


def _request(state: TeamState) -> str:
    parts = [f"Goal:\n{state['goal'].strip()}"]
    if state.get("entry_point"):
        parts.append(f"The function to implement is `{state['entry_point']}`.")
    current = state.get("files", {}).get(MAIN_FILE)
    if current and state.get("feedback"):
        parts.append(f"Current {MAIN_FILE}:\n{current}")
    if lessons := state.get("lessons"):
        parts.append("Lessons from earlier similar tasks:\n" + "\n".join(f"- {x}" for x in lessons))
    if feedback := state.get("feedback"):
        parts.append(f"Fix these problems:\n{feedback}")
    return "\n\n".join(parts)


async def _page_in_lessons(state: TeamState, ctx: TeamContext, task_id: str) -> list[str]:
    memory = await deps.get_memory(ctx)
    if memory is None:
        return []
    hits = await asyncio.to_thread(memory.lessons, state["goal"], ctx.tenant, LESSONS_K)
    return lesson_texts(hits, exclude_task=task_id)


async def coder(state: TeamState, runtime: Runtime[TeamContext]) -> dict[str, Any]:
    """Produce the next version of the code from the goal and the latest feedback."""
    ctx = deps.context_of(runtime.context)
    prompt = load_prompt("coder")
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
    try:
        edit, usage = await structured_call(
            await deps.get_model(ctx),
            prompt.text,
            _request(state),
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
            "messages": [AIMessage(f"coder: no valid edit ({exc})"[:600], name="coder")],
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
        "messages": [AIMessage(f"coder: {summary}", name="coder")],
    }
