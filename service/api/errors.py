"""The task API's errors: one exception with a stable code, and how it is rendered.

Every module of the façade raises `ApiError`; `service.api.app` turns it into the `ErrorBody` JSON
that its docstring's error table documents. `upstream_error` maps the LangGraph server's answers
onto those codes, so a client never sees the server's own error format.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import httpx
from fastapi.responses import JSONResponse

from service.api.schemas import ErrorBody, ErrorDetail

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error with a stable code, rendered as `ErrorBody`."""

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def error_response(status_code: int, code: str, message: str, **extra: Any) -> JSONResponse:
    """The `ErrorBody` response every error handler of the façade answers with."""
    body = ErrorBody(error=ErrorDetail(code=code, message=message, **extra))
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status_code)


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "No or unknown API key (`unauthorized`)."},
    404: {"model": ErrorBody, "description": "No such task for this tenant (`not_found`)."},
    422: {"model": ErrorBody, "description": "Invalid request (`validation_error`)."},
    429: {"model": ErrorBody, "description": "`rate_limited`; see Retry-After."},
    502: {"model": ErrorBody, "description": "Unexpected answer of the LangGraph server."},
    503: {
        "model": ErrorBody,
        "description": "A shared lock is held too long (`busy`), or PostgreSQL or Redis is "
        "unreachable (`unavailable`); see Retry-After.",
    },
}
"""The error responses every route documents (routes add their own 403/409/429)."""


def upstream_error(exc: httpx.HTTPStatusError, what: str) -> ApiError:
    """The façade's error for an error answer of the LangGraph server about `what`."""
    code = exc.response.status_code
    if code in (403, 404):
        return ApiError(404, "not_found", f"{what} not found")
    if code == 409:
        return ApiError(409, "conflict", "the task already has a run in progress")
    if code == 401:
        return ApiError(401, "unauthorized", "the server refused the API key")
    if code == 422:
        return ApiError(422, "validation_error", "the server refused the request")
    if code == 503:  # the server's own database or Redis is down (`service.api.outage`)
        retry = exc.response.headers.get("Retry-After", "5")
        message = "a service the LangGraph server depends on is unavailable"
        return ApiError(503, "unavailable", message, headers={"Retry-After": retry})
    log.warning("LangGraph server answered %s for %s", code, what)
    return ApiError(502, "upstream_error", f"the LangGraph server answered {code}")
