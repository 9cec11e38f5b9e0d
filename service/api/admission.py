"""Whether a new task may start: its depth, the load, the tenant's cap and the operator's policy.

Each check raises the `ApiError` the task API documents for it (`service.api.app`'s table), so
`create_task` reads as the order they apply in: nesting depth, backpressure, then, under the
tenant's lock, the active-task cap and the options' policy.
"""

from __future__ import annotations

from service.api.errors import ApiError
from service.api.run_driver import run_context
from service.api.run_guard import Refused, check_context
from service.api.schemas import TaskOptions
from service.api.session import Session
from service.quotas import quota_refusal
from service.rate_limits import get_limit_store
from service.settings import get_settings

__all__ = [
    "ACTIVE_RETRY_AFTER_S",
    "refuse_looser_than_policy",
    "refuse_over_active_cap",
    "refuse_over_quota",
    "refuse_when_overloaded",
    "task_depth",
]

ACTIVE_RETRY_AFTER_S = 30


async def task_depth(sess: Session, options: TaskOptions, depth: int, limit: int) -> int:
    """The new task's nesting depth (one below its parent's at least), refused over `limit`.

    The parent's recorded depth counts, not only the header, so an agent cannot reset the
    depth by leaving the header out.
    """
    if options.parent_task_id is not None:
        try:
            parent = await sess.thread(str(options.parent_task_id))
        except ApiError as exc:
            if exc.status_code == 404:
                raise ApiError(404, "not_found", "parent task not found") from None
            raise
        depth = max(depth, int((parent.get("metadata") or {}).get("depth") or 0) + 1)
    if depth > limit:
        raise ApiError(
            403,
            "task_depth_exceeded",
            f"task depth {depth} exceeds the limit of {limit}",
        )
    return depth


async def refuse_when_overloaded() -> None:
    """429 `overloaded` while backpressure is on: a new task would only add to the backlog."""
    pressure = await get_limit_store().backpressure()
    if pressure is not None:
        raise ApiError(
            429,
            "overloaded",
            f"not accepting new tasks right now: {pressure.reason}",
            headers={"Retry-After": str(pressure.retry_after_s)},
        )


async def refuse_over_quota(tenant: str) -> None:
    """403 `no_quota` for a tenant with a quota of 0; 429 `quota_exceeded` while a window is spent.

    The hour's or day's tokens or steps (`service.quotas`) are shared by every instance;
    Retry-After is when the spent window ends. A task started anyway could not call the model.
    """
    settings = get_settings()
    refusal = await quota_refusal(settings, tenant, floor=settings.budget_floor_tokens)
    if refusal is None:
        return
    if refusal.status == 403:
        raise ApiError(403, "no_quota", refusal.reason)
    raise ApiError(
        429,
        "quota_exceeded",
        refusal.reason,
        headers={"Retry-After": str(refusal.retry_after_s)},
    )


async def refuse_over_active_cap(sess: Session, cap: int) -> None:
    """429 `active_task_limit` when the tenant already has `cap` running or waiting tasks."""
    active = await sess.active_tasks(cap)
    if active >= cap:
        raise ApiError(
            429,
            "active_task_limit",
            f"{active} tasks are running or waiting; the limit is {cap}",
            headers={"Retry-After": str(ACTIVE_RETRY_AFTER_S)},
        )


def refuse_looser_than_policy(options: TaskOptions, tenant: str) -> None:
    """Options over the operator's caps or policy are refused here, before a thread exists."""
    try:
        check_context(run_context(options, tenant), tenant=tenant, settings=get_settings())
    except Refused as exc:
        code = "forbidden" if exc.status == 403 else "invalid_options"
        raise ApiError(exc.status, code, exc.reason) from None
