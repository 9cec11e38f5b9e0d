"""Routes of the dead-letter queue (`/v1/dead-letters`), included by `service.api.app`.

Kept apart from the task routes so the façade module stays about tasks; the routes reuse the task
routes' session (`service.api.dependencies`), errors and run driver (`service.api.run_driver`), so a
replay is logged and observed exactly like any other run (and a replay that fails again becomes a
new dead letter with one more attempt).

Replay resumes the thread from its last checkpoint: the run is started with no input, so
LangGraph re-executes only the step that failed (and what follows), not the steps whose writes
are already checkpointed. An edited input is sent as the run's `Command(update=…)`: LangGraph
applies it to the state of that same checkpoint and then resumes, whereas `update_state` would
write a new checkpoint as some node and change what runs next.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator

from graphs.state import TASK_FIELDS
from service.api.dependencies import SessionDep
from service.api.errors import ERRORS, ApiError
from service.api.run_driver import exclusive, graph_of, run_context, start_run
from service.api.schemas import ErrorBody, TaskOptions, clean_text
from service.api.session import Session
from service.dlq import DeadLetter, DeadLetterStatus, get_dlq_store

router = APIRouter(prefix="/v1/dead-letters", tags=["dead-letters"])

LetterId = Annotated[uuid.UUID, Path(description="The dead letter's id.")]
_EDITABLE = TASK_FIELDS
_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorBody, "description": "`dead_letter_closed` or `conflict`."}
}


class DeadLetterPage(BaseModel):
    """One page of the tenant's dead letters, newest first."""

    dead_letters: list[DeadLetter]
    next_offset: int | None


class ReplayRequest(BaseModel):
    """How to replay: as it was (no body), or with edited task input."""

    model_config = ConfigDict(extra="forbid")

    input: dict[str, JsonValue] | None = Field(
        default=None,
        description=(
            "Task input fields to change before resuming (`goal`, `entry_point`); applied to "
            "the last checkpoint's state, then the failed step runs again."
        ),
    )

    @field_validator("input")
    @classmethod
    def _input(cls, value: dict[str, JsonValue] | None) -> dict[str, JsonValue] | None:
        if value is None:
            return None
        unknown = sorted(set(value) - _EDITABLE)
        if unknown:
            raise ValueError(f"only {sorted(_EDITABLE)} can be edited, not {unknown}")
        for name, item in value.items():
            if not isinstance(item, str) or not item.strip():
                raise ValueError(f"{name} must be a non-blank string")
            clean_text(item)
        return value


class ReplayResponse(BaseModel):
    """The replayed letter and the run that resumes its task."""

    dead_letter: DeadLetter
    run_id: str


class ResolveRequest(BaseModel):
    """Why the letter needs no replay."""

    model_config = ConfigDict(extra="forbid")

    note: str = Field(default="", max_length=5_000)

    @field_validator("note")
    @classmethod
    def _note(cls, value: str) -> str:
        return clean_text(value)


async def _letter(sess: Session, letter_id: uuid.UUID) -> DeadLetter:
    letter = await (await get_dlq_store()).get(sess.identity.tenant, letter_id.hex)
    if letter is None:
        raise ApiError(404, "not_found", "dead letter not found")
    return letter


@router.get("", response_model=DeadLetterPage, responses=ERRORS, summary="List dead letters")
async def list_dead_letters(
    sess: SessionDep,
    status: Annotated[DeadLetterStatus | None, Query(description="Only this status.")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> DeadLetterPage:
    """The tenant's failed runs, newest first."""
    letters = await (await get_dlq_store()).list(sess.identity.tenant, status, limit, offset)
    return DeadLetterPage(
        dead_letters=letters,
        next_offset=offset + len(letters) if len(letters) == limit else None,
    )


@router.get("/{letter_id}", response_model=DeadLetter, responses=ERRORS, summary="Dead letter")
async def get_dead_letter(letter_id: LetterId, sess: SessionDep) -> DeadLetter:
    """One dead letter."""
    return await _letter(sess, letter_id)


@router.post(
    "/{letter_id}/replay",
    response_model=ReplayResponse,
    responses={**ERRORS, **_CONFLICT},
    summary="Replay from the last checkpoint",
)
async def replay_dead_letter(
    letter_id: LetterId, sess: SessionDep, body: ReplayRequest | None = None
) -> ReplayResponse:
    """Resume the task from its last checkpoint (optionally with edited input); a new run."""
    tenant = sess.identity.tenant
    letter = await _letter(sess, letter_id)
    store = await get_dlq_store()
    tid = letter.task_id
    async with exclusive(f"task:{tid}"):
        await sess.facade.settle(tid)
        thread = await sess.thread(tid)
        if not await store.transition(
            tenant, letter.id, from_status=("open",), to_status="replayed"
        ):
            raise ApiError(409, "dead_letter_closed", "the dead letter is no longer open")
        metadata = thread.get("metadata") or {}
        options = TaskOptions.model_validate(
            metadata["options"] if isinstance(metadata.get("options"), dict) else {}
        )
        edited = body.input if body is not None else None
        last = None if edited else ((await sess.state(tid)).get("checkpoint") or {})
        try:
            run_id = await start_run(
                sess,
                tid,
                command={"update": edited} if edited else None,
                checkpoint_id=last.get("checkpoint_id") if last else None,
                context=run_context(options, tenant),
                graph=graph_of(metadata),
            )
        except ApiError:
            await store.transition(tenant, letter.id, from_status=("replayed",), to_status="open")
            raise
    replayed = await store.get(tenant, letter.id)
    return ReplayResponse(dead_letter=replayed or letter, run_id=run_id)


@router.post(
    "/{letter_id}/resolve",
    response_model=DeadLetter,
    responses={**ERRORS, **_CONFLICT},
    summary="Resolve without replay",
)
async def resolve_dead_letter(
    letter_id: LetterId, sess: SessionDep, body: ResolveRequest | None = None
) -> DeadLetter:
    """Close the letter with a note (e.g. the task was abandoned or fixed another way)."""
    tenant = sess.identity.tenant
    letter = await _letter(sess, letter_id)
    note = body.note if body is not None else ""
    if not await (await get_dlq_store()).transition(
        tenant, letter.id, from_status=("open", "replayed"), to_status="resolved", note=note
    ):
        raise ApiError(409, "dead_letter_closed", "the dead letter is already resolved")
    return await _letter(sess, letter_id)
