"""A dependency that is down answers 503 with Retry-After, never a 500 or a dropped connection.

PostgreSQL and Redis restart. The connection pools check connections before use and retry with
backoff (`service.sqlstore`, `service.rate_limits`, Aegra's own pools), so a restart
costs nothing once the server is back; while it is down, a request fails after the pool's wait. That
failure is not the caller's fault nor a bug, so it is answered as what it is: `503 unavailable` with
`Retry-After`, in the task API's error format under `/v1` and in Aegra's elsewhere.

`is_outage` recognises the drivers' connection errors (psycopg, its pool, asyncpg under
SQLAlchemy, redis-py) anywhere in an exception's causes, since Aegra and SQLAlchemy wrap them.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator

import psycopg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from service.api.errors import error_response

__all__ = [
    "OUTAGE_TYPES",
    "RETRY_AFTER_S",
    "install",
    "is_outage",
    "outage_aware",
    "outage_response",
]

log = logging.getLogger(__name__)

RETRY_AFTER_S = 5
"""A restart takes seconds; ask clients to come back after about that long."""
MESSAGE = "a service this API depends on is unavailable; retry after the indicated delay"


def _driver_types() -> tuple[type[Exception], ...]:
    """The connection errors of asyncpg, when installed (Aegra's SQLAlchemy engine uses it)."""
    try:
        from asyncpg.exceptions import (  # type: ignore[import-untyped]
            CannotConnectNowError,
            InterfaceError,
            PostgresConnectionError,
        )
    except ImportError:
        return ()
    return (PostgresConnectionError, CannotConnectNowError, InterfaceError)


def _wrapper_types() -> tuple[type[Exception], ...]:
    """SQLAlchemy's wrapper of driver errors, judged by the error it wraps (`orig`)."""
    try:
        from sqlalchemy.exc import DBAPIError
    except ImportError:
        return ()
    return (DBAPIError,)


_WRAPPERS = _wrapper_types()
OUTAGE_TYPES: tuple[type[Exception], ...] = (
    psycopg.OperationalError,  # includes the pool's PoolTimeout and AdminShutdown
    RedisConnectionError,
    RedisTimeoutError,
    ConnectionError,  # OSError's refused/reset/aborted
    *_driver_types(),
    *_WRAPPERS,
)
"""Exception types that may mean a dependency is unreachable (`is_outage` decides)."""


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)  # SQLAlchemy keeps the driver's error here
        nested = orig if isinstance(orig, BaseException) else None
        current = nested or current.__cause__ or current.__context__


def _is_connection_error(exc: BaseException) -> bool:
    if getattr(exc, "connection_invalidated", False):
        return True
    if isinstance(exc, _WRAPPERS):
        return False  # judged by its driver error (`orig`), not by its wrapper
    return isinstance(exc, OUTAGE_TYPES)


def is_outage(exc: BaseException) -> bool:
    """Whether `exc` (or what caused it) is a database or Redis connection failure."""
    return any(_is_connection_error(cause) for cause in _causes(exc))


def outage_response(path: str) -> JSONResponse:
    """503 with Retry-After: the task API's `ErrorBody` under `/v1`, Aegra's format elsewhere."""
    if path == "/v1" or path.startswith("/v1/"):
        response = error_response(503, "unavailable", MESSAGE)
    else:
        body = {"error": "service_unavailable", "message": MESSAGE, "details": None}
        response = JSONResponse(body, status_code=503)
    response.headers["Retry-After"] = str(RETRY_AFTER_S)
    return response


Handler = Callable[[Request, Exception], Awaitable[Response]]


async def _on_outage(request: Request, exc: Exception) -> Response:
    """Exception handler for `OUTAGE_TYPES`: 503 for an outage, else the usual 500 path."""
    if not is_outage(exc):
        raise exc
    log.warning("%s %s: dependency unavailable (%s)", request.method, request.url.path, exc)
    return outage_response(request.url.path)


def outage_aware(handler: Handler) -> Handler:
    """Wrap a catch-all handler (Aegra's 500s) so errors caused by an outage answer 503."""

    async def handle(request: Request, exc: Exception) -> Response:
        if getattr(exc, "status_code", 500) >= 500 and is_outage(exc):
            log.warning("%s %s: dependency unavailable", request.method, request.url.path)
            return outage_response(request.url.path)
        return await handler(request, exc)

    return handle


def install(app: FastAPI) -> None:
    """Answer 503 + Retry-After for outages on every route of `app` (Aegra's included)."""
    for exc_type in OUTAGE_TYPES:
        app.add_exception_handler(exc_type, _on_outage)
