"""Task records: what `strategos resume` and `approve` need to continue a task elsewhere."""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path
from typing import Literal

from langchain_core.runnables import RunnableConfig
from pydantic import BaseModel, Field, field_validator

from graphs.context import TeamContext
from graphs.state import MAX_GOAL_CHARS
from service.settings import Settings

_TASK_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")

RECURSION_MARGIN = 10
"""Super-steps beyond two per agent step (the supervisor's turn and the worker's): the first
supervisor turn, the approval detour and delivery, with room to spare, so the supervisor's step
guard always stops the team before LangGraph's recursion limit would."""


class TaskNotFoundError(LookupError):
    """No record for that task id."""


class TaskRecord(BaseModel):
    """The options a task was started with (the state itself lives in the checkpointer)."""

    task_id: str
    goal: str = Field(min_length=1, max_length=MAX_GOAL_CHARS)
    entry_point: str | None = None
    approve: Literal["ask", "auto", "deny"] = "ask"
    out_dir: str
    max_steps: int | None = Field(default=None, ge=1)
    token_budget: int | None = Field(default=None, ge=1)
    team: Literal["pipeline", "selection", "repo"] = "pipeline"
    """The graph the task runs on, fixed at creation: its checkpoints are that graph's."""
    repo: str | None = None
    """The repository a `repo` task copied at its start (`strategos run --repo`)."""
    created_at: float = Field(default_factory=time.time)

    @field_validator("task_id")
    @classmethod
    def _safe_id(cls, value: str) -> str:
        if not _TASK_ID.fullmatch(value):
            raise ValueError("task ids are 1-64 letters, digits, '-' or '_'")
        return value

    def context(self, settings: Settings) -> TeamContext:
        """The run context this task always runs with."""
        return TeamContext(
            approve=self.approve,
            out_dir=self.out_dir,
            max_steps=self.max_steps,
            token_budget=self.token_budget,
        )

    def config(self, settings: Settings) -> RunnableConfig:
        """LangGraph config: the task id is the thread id; the recursion limit fits the steps."""
        return {
            "configurable": {"thread_id": self.task_id},
            "recursion_limit": recursion_limit(self.max_steps or settings.max_steps),
        }


def recursion_limit(max_steps: int) -> int:
    """LangGraph's recursion limit for a run allowed `max_steps` agent steps.

    A fixed limit either cuts long tasks off with a `GraphRecursionError` (no report) or stops
    nothing; following the step limit keeps the step guard, which reports, the one that fires.
    """
    return 2 * max_steps + RECURSION_MARGIN


def new_task_id() -> str:
    """A short random id that is safe in paths and URLs."""
    return uuid.uuid4().hex[:12]


def task_dir(settings: Settings, task_id: str) -> Path:
    """Per-task directory: the record, the test-run log and the default delivery folder."""
    return settings.tasks_dir() / task_id


def save(settings: Settings, record: TaskRecord) -> None:
    """Write the record (atomically)."""
    folder = task_dir(settings, record.task_id)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "task.json.tmp"
    tmp.write_text(record.model_dump_json(indent=2))
    tmp.replace(folder / "task.json")


def find(settings: Settings, task_id: str) -> TaskRecord | None:
    """The record of a (valid) task id, or None when there is none yet."""
    path = task_dir(settings, task_id) / "task.json"
    return TaskRecord.model_validate_json(path.read_text()) if path.exists() else None


def load(settings: Settings, task_id: str) -> TaskRecord:
    """Read a record, with a clear error when the id is unknown."""
    if not _TASK_ID.fullmatch(task_id):
        raise TaskNotFoundError(f"{task_id!r} is not a task id")
    path = task_dir(settings, task_id) / "task.json"
    if not path.exists():
        raise TaskNotFoundError(f"no task {task_id!r} under {settings.tasks_dir()}")
    return TaskRecord.model_validate_json(path.read_text())
