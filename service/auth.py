"""The server's auth (langgraph.json → `auth.path`): API key → tenant, and tenant-owned resources.

`langgraph dev` and Aegra both call `authenticate(headers)` and then the `@auth.on…` handlers,
so the same rules guard the native LangGraph API and the task façade (which forwards the
caller's key). Threads, runs (through their thread) and crons get `metadata.owner = tenant` on
create and a filter `owner == tenant` on every other action: another tenant's thread is simply
not found (404), never shown. Assistants are shared for reading (the graphs are the product);
assistants a tenant creates are its own. The store is tenant-scoped by namespace: with keys
configured, a namespace must start with the caller's tenant.
"""

from __future__ import annotations

from typing import Any

from langgraph_sdk import Auth

from service.tenancy import Unauthenticated, resolve_identity

auth = Auth()

OWNER = "owner"
"""Metadata key holding the owning tenant on threads, crons and tenant-made assistants."""
ANONYMOUS_PERMISSION = "anonymous"


@auth.authenticate
async def authenticate(headers: dict[Any, Any]) -> Auth.types.MinimalUserDict:
    """Resolve the caller's tenant from `x-api-key` / `Authorization: Bearer` (401 otherwise)."""
    try:
        identity = await resolve_identity(headers)
    except Unauthenticated as exc:
        raise Auth.exceptions.HTTPException(status_code=401, detail=str(exc)) from None
    permissions = ["tenant", ANONYMOUS_PERMISSION] if identity.anonymous else ["tenant"]
    return {"identity": identity.tenant, "permissions": permissions}


def _own(ctx: Auth.types.AuthContext, value: Any) -> dict[str, str]:
    """Stamp the owner on what is written and filter what is read by it."""
    filters = {OWNER: ctx.user.identity}
    if isinstance(value, dict):
        metadata = value.get("metadata")
        if not isinstance(metadata, dict):
            metadata = {}
            value["metadata"] = metadata
        metadata.update(filters)
    return filters


@auth.on.threads
async def on_threads(ctx: Auth.types.AuthContext, value: Any) -> dict[str, str]:
    """Threads and their runs belong to the tenant that created them."""
    return _own(ctx, value)


@auth.on.crons
async def on_crons(ctx: Auth.types.AuthContext, value: Any) -> dict[str, str]:
    """Crons start runs, so they are owned like threads."""
    return _own(ctx, value)


@auth.on.assistants.read
async def read_assistants(ctx: Auth.types.AuthContext, value: Any) -> None:
    """The served graphs' assistants are readable by every tenant."""
    return None


@auth.on.assistants.search
async def search_assistants(ctx: Auth.types.AuthContext, value: Any) -> None:
    """Listing assistants shows the shared ones (and every tenant's, which carry no data)."""
    return None


@auth.on.assistants
async def write_assistants(ctx: Auth.types.AuthContext, value: Any) -> dict[str, str]:
    """Creating, updating or deleting an assistant: only one's own."""
    return _own(ctx, value)


@auth.on.store
async def on_store(ctx: Auth.types.AuthContext, value: Any) -> None:
    """With keys configured, a store namespace must start with the caller's tenant."""
    if ANONYMOUS_PERMISSION in ctx.permissions:
        return None
    namespace = value.get("namespace") if isinstance(value, dict) else None
    if not namespace or namespace[0] != ctx.user.identity:
        raise Auth.exceptions.HTTPException(
            status_code=403, detail="store namespaces must start with your tenant id"
        )
    return None
