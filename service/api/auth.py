"""The server's auth (langgraph.json → `auth.path`): API key → tenant, and tenant-owned resources.

`langgraph dev` and Aegra both call `authenticate(headers)` and then the `@auth.on…` handlers,
so the same rules guard the native LangGraph API and the task façade (which forwards the
caller's key). Threads, runs (through their thread) and crons get `metadata.owner = tenant` on
create and a filter `owner == tenant` on every other action: another tenant's thread is simply
not found (404), never shown. Assistants are shared for reading (the graphs are the product);
assistants a tenant creates are its own. The store is tenant-scoped by namespace: with keys
configured, a namespace must start with the caller's tenant.

Every run a caller creates — directly, from a cron or through an assistant's defaults — is
checked by `service.api.run_guard` first: no host path, no tenant, no jump and no state write
(but the task's input) in a `command`, every limit under the operator's cap, approval no looser
than the operator's policy, and an answer to an approval only from a key allowed to approve
(`approve` permission).
"""

from __future__ import annotations

from typing import Any

from langgraph_sdk import Auth

from service.api.run_guard import Refused, check_context, check_run, run_kwargs
from service.api.tenancy import Unauthenticated, resolve_identity
from service.quotas import quota_refusal
from service.settings import get_settings

auth = Auth()

OWNER = "owner"
"""Metadata key holding the owning tenant on threads, crons and tenant-made assistants."""
ANONYMOUS_PERMISSION = "anonymous"
APPROVE_PERMISSION = "approve"


@auth.authenticate
async def authenticate(headers: dict[Any, Any]) -> Auth.types.MinimalUserDict:
    """Resolve the caller's tenant from `x-api-key` / `Authorization: Bearer` (401 otherwise)."""
    try:
        identity = await resolve_identity(headers)
    except Unauthenticated as exc:
        raise Auth.exceptions.HTTPException(status_code=401, detail=str(exc)) from None
    permissions = ["tenant", ANONYMOUS_PERMISSION] if identity.anonymous else ["tenant"]
    if identity.can_approve:
        permissions.append(APPROVE_PERMISSION)
    return {"identity": identity.tenant, "permissions": permissions}


def _guarded(check: Any) -> None:
    """Run a check; a refusal becomes the HTTP answer that names the field."""
    try:
        check()
    except Refused as exc:
        raise Auth.exceptions.HTTPException(status_code=exc.status, detail=exc.reason) from None


def _check_run(ctx: Auth.types.AuthContext, value: Any) -> None:
    if not isinstance(value, dict):
        return
    _guarded(
        lambda: check_run(
            value,
            tenant=ctx.user.identity,
            can_approve=APPROVE_PERMISSION in ctx.permissions,
            settings=get_settings(),
        )
    )


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


@auth.on.threads.create_run
async def on_create_run(ctx: Auth.types.AuthContext, value: Any) -> dict[str, str]:
    """A run is checked (`service.api.run_guard`) and the tenant's quota, then owned."""
    _check_run(ctx, value)
    await _check_quota(ctx, value)
    return _own(ctx, value)


async def _check_quota(ctx: Auth.types.AuthContext, value: Any) -> None:
    """A run that would call the model is refused while the tenant's quota is spent or 0.

    An answer to the team (`command.resume`: an approval) is let through: delivering what was
    approved calls no model, and a spent quota must not hold a human's answer hostage.
    """
    kwargs = run_kwargs(value) if isinstance(value, dict) else {}
    command = kwargs.get("command")
    if isinstance(command, dict) and command.get("resume") is not None:
        return
    settings = get_settings()
    refusal = await quota_refusal(settings, ctx.user.identity, floor=settings.budget_floor_tokens)
    if refusal is not None:
        headers = {"Retry-After": str(refusal.retry_after_s)} if refusal.status == 429 else None
        raise Auth.exceptions.HTTPException(
            status_code=refusal.status, detail=refusal.reason, headers=headers
        )


@auth.on.crons
async def on_crons(ctx: Auth.types.AuthContext, value: Any) -> dict[str, str]:
    """Crons start runs, so their payload is checked like a run and they are owned."""
    if isinstance(value, dict):
        payload = value.get("payload")
        _check_run(ctx, payload if isinstance(payload, dict) else value)
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
    """Creating, updating or deleting an assistant: only one's own, with defaults a run may use."""
    if isinstance(value, dict):
        settings = get_settings()
        tenant = ctx.user.identity
        _guarded(lambda: check_context(value.get("context"), tenant=tenant, settings=settings))
        config = value.get("config")
        configurable = config.get("configurable") if isinstance(config, dict) else None
        _guarded(
            lambda: check_context(
                configurable, tenant=tenant, settings=settings, where="config.configurable"
            )
        )
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
