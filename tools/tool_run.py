"""The gateway's execution step: run the handler, validate its result, record the outcome.

The handler runs time-limited, with a lease heartbeat when the call is ledgered. Whatever goes
wrong in it (a `ToolError`, the time limit, the sandbox, a result that breaks the tool's result
model, any other bug) becomes an observation the model can read, never an exception. A ledgered
call's outcome is recorded (`complete`/`fail`) with, for a workspace that lives in the graph
state, the files it changed, so a replay can re-apply them; every outcome is logged as
`ActivityCompleted`/`ActivityFailed`.
"""

from __future__ import annotations

import asyncio

from pydantic import JsonValue, ValidationError

from tools.call_ledger import CallLedger
from tools.errors import ToolError
from tools.registry import AnyToolSpec, ToolContext
from tools.sandbox.base import SandboxError
from tools.tool_call import ErrorCode, PreparedCall, ToolObservation

__all__ = ["execute", "validate_result"]

type _Failure = tuple[ErrorCode, str]


async def execute(
    book: CallLedger,
    call: PreparedCall,
    attempt: int | None,
    tool_ctx: ToolContext,
    timeout_s: float,
) -> ToolObservation:
    """Run `call` (claimed as `attempt` when ledgered, else None) and record what came of it."""
    workspace = call.ctx.workspace
    ledgered = attempt is not None
    before = await workspace.snapshot() if ledgered and not workspace.durable else None
    if not ledgered:  # a ledgered call's claim logged it
        await book.event(
            call.ctx,
            "ActivityScheduled",
            call.key,
            call.spec,
            {"attempt": attempt, "args": call.args_json},
        )
    heartbeat = (
        asyncio.create_task(book.keep_lease(call.key, attempt)) if attempt is not None else None
    )
    try:
        outcome = await _run_handler(call, tool_ctx, timeout_s)
    finally:
        if heartbeat is not None:
            heartbeat.cancel()
    if isinstance(outcome, tuple):
        return await _failed(book, call, attempt, outcome)
    effects = await _effects(call, before)
    return await _completed(book, call, attempt, outcome, effects)


async def _run_handler(
    call: PreparedCall, tool_ctx: ToolContext, timeout_s: float
) -> dict[str, JsonValue] | _Failure:
    """The handler's validated result as JSON, or why there is none (in the model's words)."""
    spec = call.spec
    try:
        result = await asyncio.wait_for(spec.handler(call.args, tool_ctx), timeout_s)
        return validate_result(spec, result)
    except ToolError as exc:
        return ("failed", str(exc))
    except TimeoutError:
        return ("failed", f"{spec.name} did not finish within {timeout_s:.0f} s.")
    except SandboxError as exc:
        return ("failed", f"The sandbox failed: {exc}")
    except (ValidationError, TypeError) as exc:
        return (
            "invalid_result",
            f"{spec.name} produced a result that does not match its schema ({exc}); "
            "this is a bug in the tool, not in your call.",
        )
    except Exception as exc:  # noqa: BLE001 - any tool bug becomes an observation
        return ("failed", f"{spec.name} failed unexpectedly: {type(exc).__name__}: {exc}")


def validate_result(spec: AnyToolSpec, result: object) -> dict[str, JsonValue]:
    """The result as JSON, checked against the result model (TypeError/ValidationError if not).

    It is validated again from its JSON form because a handler can build a model instance
    without validation (`model_construct`, mutation after construction).
    """
    if not isinstance(result, spec.result_model):
        raise TypeError(f"handler returned {type(result).__name__}")
    checked = spec.result_model.model_validate(result.model_dump(mode="json"))
    result_json: dict[str, JsonValue] = checked.model_dump(mode="json")
    return result_json


async def _effects(
    call: PreparedCall, before: dict[str, str] | None
) -> dict[str, JsonValue] | None:
    """The files the call changed (None: deleted), when the workspace was snapshotted before."""
    if before is None:
        return None
    after = await call.ctx.workspace.snapshot()
    effects: dict[str, JsonValue] = {p: c for p, c in after.items() if before.get(p) != c}
    effects.update({p: None for p in before if p not in after})
    return effects


async def _failed(
    book: CallLedger, call: PreparedCall, attempt: int | None, failure: _Failure
) -> ToolObservation:
    code, message = failure
    data = {"code": code, "error": message}
    if attempt is not None:
        event = book.draft(call.ctx, "ActivityFailed", call.key, call.spec, data)
        await book.ledger.fail(call.key, message, attempt=attempt, event=event)
    else:
        await book.event(call.ctx, "ActivityFailed", call.key, call.spec, data)
    return call.error(code, message)


async def _completed(
    book: CallLedger,
    call: PreparedCall,
    attempt: int | None,
    result_json: dict[str, JsonValue],
    effects: dict[str, JsonValue] | None,
) -> ToolObservation:
    observation = call.observation(ok=True, result=result_json)
    data = {"duration_ms": observation.duration_ms}
    if attempt is not None:
        event = book.draft(call.ctx, "ActivityCompleted", call.key, call.spec, data)
        record = {"result": result_json, "effects": effects}
        await book.ledger.complete(call.key, record, attempt=attempt, event=event)
    else:
        await book.event(call.ctx, "ActivityCompleted", call.key, call.spec, data)
    return observation
