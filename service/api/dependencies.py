"""The task API's request dependencies: who calls, within which limits, against which server.

Shared by the task routes, the WebSocket stream and the dead-letter routes, so every one of them
authenticates and rate-limits the same way, and drives the same server: the configured one, or
the one whose socket accepted the request.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader

from service.api.errors import ApiError
from service.api.session import Facade, Session
from service.api.tenancy import Identity, Unauthenticated, resolve_identity
from service.rate_limits import get_limit_store, limits_for, retry_after
from service.settings import get_settings

_api_key_scheme = APIKeyHeader(name="x-api-key", auto_error=False, description="Tenant API key.")


async def authenticate(
    request: Request, _key: Annotated[str | None, Depends(_api_key_scheme)] = None
) -> Identity:
    """The calling tenant (401 otherwise), after taking a token from its rate bucket."""
    try:
        identity = await resolve_identity(request.headers)
    except Unauthenticated as exc:
        raise ApiError(401, "unauthorized", str(exc)) from None
    await rate_limit(identity)
    return identity


async def rate_limit(identity: Identity) -> None:
    """Take a token from the tenant's request bucket, or refuse with 429 and Retry-After."""
    limits = limits_for(get_settings(), identity.tenant)
    wait = await get_limit_store().take(identity.tenant, limits)
    if wait > 0:
        raise ApiError(
            429,
            "rate_limited",
            f"more than {limits.rate_limit_per_s:g} requests/s for this tenant",
            headers={"Retry-After": str(retry_after(wait))},
        )


Caller = Annotated[Identity, Depends(authenticate)]


def server_url(scope: Mapping[str, Any]) -> str:
    """The LangGraph server to drive: the setting, else the socket this request arrived on.

    The Host header is the client's to choose, so it is never used (no request forgery).
    """
    configured = get_settings().server_url
    if configured:
        return configured.rstrip("/")
    server = scope.get("server")
    if not server or server[1] is None:
        raise ApiError(503, "server_unknown", "set STRATEGOS_SERVER_URL for this deployment")
    host, port = str(server[0]), int(server[1])
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def _facade(request: Request) -> Facade:
    facade = getattr(request.app.state, "strategos", None)
    if not isinstance(facade, Facade):
        raise ApiError(503, "starting", "the task API is starting; retry shortly")
    return facade


async def session(request: Request, identity: Caller) -> Session:
    """Dependency: the caller's session against the server this app is mounted in."""
    return Session(_facade(request), identity, server_url(request.scope))


SessionDep = Annotated[Session, Depends(session)]
