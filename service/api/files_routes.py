"""`GET /v1/tasks/{task_id}/files`: the files a task delivered, served to its tenant.

A delivery writes to a folder on the server's disk, which a client of the API cannot read; the
same files are in the task's state (the best candidate's files, which `deliver` wrote), so they
are served from there, through the same tenant check as every task route. The report's `files`
says which of them were delivered: before delivery, or when nothing was delivered, the list is
empty and `delivered` is false. `current` is the team's best code at this moment (what it would
deliver now), so a watcher sees the code the checks are about while the task still runs.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from graphs.state import files_to_deliver
from service.api.dependencies import SessionDep
from service.api.errors import ERRORS
from service.api.task_state import state_values

router = APIRouter(prefix="/v1/tasks", tags=["tasks"])

TaskId = Annotated[uuid.UUID, Path(description="The task id (a thread id).")]


class DeliveredFile(BaseModel):
    """One delivered file and its text."""

    path: str
    content: str


class TaskFiles(BaseModel):
    """What a task delivered: its files' text and where the server wrote them."""

    task_id: str
    delivered: bool = Field(description="Whether the task delivered its files.")
    destination: str | None = Field(description="The folder on the server it delivered to.")
    files: list[DeliveredFile]
    current: list[DeliveredFile] = Field(
        description="The team's best files now, what it would deliver (empty before any code)."
    )


def delivered_files(values: Mapping[str, Any]) -> list[DeliveredFile]:
    """The delivered files' text: the report names them, the best candidate holds them."""
    report = values.get("report")
    names = report.get("files") if isinstance(report, dict) else None
    if not isinstance(names, list):
        return []
    texts = files_to_deliver(values)
    return [
        DeliveredFile(path=str(name), content=str(texts[name]))
        for name in names
        if isinstance(texts.get(name), str)
    ]


@router.get(
    "/{task_id}/files",
    response_model=TaskFiles,
    responses=ERRORS,
    summary="Delivered files",
)
async def task_files(task_id: TaskId, sess: SessionDep) -> TaskFiles:
    """The files the task delivered (empty until it delivers) and its current best files."""
    thread = await sess.thread(str(task_id))
    values = state_values(await sess.state(str(thread["thread_id"])))
    files = delivered_files(values)
    report = values.get("report")
    destination = report.get("destination") if isinstance(report, dict) and files else None
    return TaskFiles(
        task_id=str(task_id),
        delivered=bool(files),
        destination=str(destination) if destination else None,
        files=files,
        current=[
            DeliveredFile(path=path, content=text)
            for path, text in sorted(files_to_deliver(values).items())
        ],
    )
