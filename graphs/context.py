"""Run-scoped context: policy and limits for one task, plus injectable dependencies.

The LangGraph server fills it from the run's `context` (plain values, validated here by
pydantic). Every served value is hostile: who the run acts for comes from the server's
authentication (`principal_of`), never from these fields, and `service.deps.run_context`
bounds what a served run may ask for by the operator's caps and approval policy. In-process
callers (the CLI, tests) may also choose the tenant and the delivery folder and inject a chat
model or a sandbox; none of those appear in the served schema, and a served run that sends
them is refused by the server's auth handler (and ignored here, should one get through).
"""

from __future__ import annotations

import re
from dataclasses import dataclass as plain_dataclass
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator
from pydantic.dataclasses import dataclass
from pydantic.json_schema import SkipJsonSchema

ApproveMode = Literal["ask", "auto", "deny"]
STRICTNESS: dict[str, int] = {"auto": 0, "ask": 1, "deny": 2}
"""How strict each approval mode is: a caller may only move up this scale."""

IN_PROCESS_ONLY = frozenset(
    {"tenant", "out_dir", "model", "sandbox", "memory", "gateway", "memory_graph", "run_log"}
)
"""Context fields only an in-process caller may set; a served request that sends one is refused."""

_SAFE_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def safe_relative_path(value: str) -> str:
    """A short relative path of plain names: no root, no `..`, nothing that leaves its folder."""
    parts = value.split("/")
    if len(value) > 200 or not parts or not all(_SAFE_PART.fullmatch(p) for p in parts):
        raise ValueError(
            "must be a relative path of names made of letters, digits, '_', '-' and '.', "
            "not starting with '.' (no '..', no leading '/')"
        )
    return value


@dataclass(kw_only=True, config=ConfigDict(arbitrary_types_allowed=True, extra="ignore"))
class TeamContext:
    """Policy and limits of one task run."""

    approve: ApproveMode = Field(
        default="ask",
        description="Sensitive actions: ask a human, approve, or refuse them. A served run may "
        "only ask for a mode at least as strict as the operator's policy.",
    )
    delivery_path: str | None = Field(
        default=None,
        description="Sub-folder of the task's own delivery folder to deliver into.",
    )
    max_steps: int | None = Field(
        default=None, ge=1, description="Agent steps before the task is stopped (capped)."
    )
    max_iterations: int | None = Field(
        default=None, ge=1, description="Coder attempts before the best one is delivered (capped)."
    )
    token_budget: int | None = Field(
        default=None, ge=1, description="Prompt plus completion tokens for the task (capped)."
    )
    use_memory: bool = Field(
        default=True, description="Page in lessons from earlier tasks and store new ones."
    )
    architecture: str = Field(
        default="auto",
        max_length=40,
        description="The architecture the `strategos` graph runs: `auto` (chosen from the "
        "input) or a name the operator allows (team, selection, react, plan_and_solve, "
        "repo_agent, reflexion, tree_of_thoughts).",
    )
    tenant: SkipJsonSchema[str] = Field(default="local", min_length=1, max_length=100)
    """Whose memories to use (in-process only; a served run's tenant is its authenticated user)."""
    out_dir: SkipJsonSchema[str | None] = Field(default=None)
    """Where deliver writes (in-process only; a served run delivers into its task's folder)."""
    model: SkipJsonSchema[Any] = Field(default=None, exclude=True)
    """Injected chat model (in-process only)."""
    sandbox: SkipJsonSchema[Any] = Field(default=None, exclude=True)
    """Injected sandbox (in-process only)."""
    memory: SkipJsonSchema[Any] = Field(default=None, exclude=True)
    """Injected episodic memory (in-process only)."""
    gateway: SkipJsonSchema[Any] = Field(default=None, exclude=True)
    """Injected tool gateway (in-process only)."""
    memory_graph: SkipJsonSchema[Any] = Field(default=None, exclude=True)
    """Injected memory graph: a MemoryGraph or a graph backend (in-process only)."""

    @field_validator("delivery_path")
    @classmethod
    def _relative(cls, value: str | None) -> str | None:
        return None if value is None else safe_relative_path(value)


@plain_dataclass(frozen=True)
class Principal:
    """Who a served run acts for, as the server authenticated them."""

    tenant: str
    can_approve: bool


def principal_of(config: Any) -> Principal | None:
    """The authenticated user a served run carries; None for an in-process run.

    Both servers (langgraph-api and Aegra) put the auth handler's user in
    `configurable.langgraph_auth_user` after the request's own config is merged, so a client
    cannot choose it.
    """
    configurable = (config or {}).get("configurable") or {}
    user = configurable.get("langgraph_auth_user")
    if user is None:
        return None
    identity = _field(user, "identity")
    permissions = _field(user, "permissions") or []
    return Principal(tenant=str(identity), can_approve="approve" in list(permissions))


def _field(user: Any, name: str) -> Any:
    if isinstance(user, dict):
        return user.get(name)
    try:
        return user[name]
    except (KeyError, TypeError):
        return getattr(user, name, None)
