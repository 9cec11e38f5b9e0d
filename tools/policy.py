"""Tool policy: which tools a tenant may call, with which arguments, and what needs approval.

The configuration is a pydantic model (`PolicyConfig`) so it can come from settings or a file.
Resolution rules, strictest first:

- **Allow/deny.** A tool is denied when a deny pattern (global or the tenant's) matches its name
  or an explicit rule says `allow: false`; otherwise it must match the tenant's allow patterns
  when the tenant has them, else the global ones. Patterns are shell globs (`run_*`).
- **Arguments.** Every argument whose schema has `format: workspace-path` must be a relative
  path that stays inside the workspace (no absolute path, no `..`), and must not match a
  `deny_paths` glob. The whole argument object must fit in `max_args_bytes`.
- **Approval.** A tool whose spec says `always` needs approval whatever the policy says. An
  explicit per-tool rule (tenant first, then global) decides next. A spec that says `never`
  needs none. Otherwise (`on_policy`) the side-effect class decides: the tenant's `approval`
  map, then the global one (by default `side_effect` and `dangerous` need a human).
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tools.registry import PATH_FORMAT, SideEffect, ToolSpec, canonical_json
from tools.sandbox.base import InvalidWorkspacePath, validate_workspace_path

__all__ = ["Policy", "PolicyConfig", "PolicyDecision", "TenantPolicy", "ToolRule"]


class ToolRule(BaseModel):
    """Overrides for one tool."""

    model_config = ConfigDict(extra="forbid")

    allow: bool | None = None
    """False denies the tool; True does not override a deny pattern."""
    require_approval: bool | None = None
    """Force (True) or waive (False) approval; cannot waive a spec's `always`."""
    deny_paths: list[str] = Field(default_factory=list)
    """Extra path globs this tool may not touch."""


class TenantPolicy(BaseModel):
    """A tenant's restrictions on top of the global policy."""

    model_config = ConfigDict(extra="forbid")

    allow: list[str] | None = None
    """Tool-name globs this tenant may use; None inherits the global list."""
    deny: list[str] = Field(default_factory=list)
    approval: dict[SideEffect, bool] = Field(default_factory=dict)
    deny_paths: list[str] = Field(default_factory=list)
    tools: dict[str, ToolRule] = Field(default_factory=dict)


def _default_approval() -> dict[SideEffect, bool]:
    return {"read_only": False, "idempotent": False, "side_effect": True, "dangerous": True}


class PolicyConfig(BaseModel):
    """The whole policy; the default allows every tool and asks before side effects."""

    model_config = ConfigDict(extra="forbid")

    allow: list[str] = Field(default_factory=lambda: ["*"])
    deny: list[str] = Field(default_factory=list)
    approval: dict[SideEffect, bool] = Field(default_factory=_default_approval)
    deny_paths: list[str] = Field(default_factory=lambda: [".git/*"])
    max_args_bytes: int = Field(default=1_000_000, gt=0)
    tools: dict[str, ToolRule] = Field(default_factory=dict)
    tenants: dict[str, TenantPolicy] = Field(default_factory=dict)

    @field_validator("approval")
    @classmethod
    def _complete_approval(cls, value: dict[SideEffect, bool]) -> dict[SideEffect, bool]:
        """A partial map overrides the defaults instead of replacing them."""
        return {**_default_approval(), **value}


class PolicyDecision(BaseModel):
    """The policy's answer for one call."""

    allowed: bool
    stage: Literal["tool", "arguments"] | None = None
    """Where a denial happened: the tool itself or its arguments."""
    reason: str = ""
    requires_approval: bool = False
    approval_reason: str = ""


def _matches(name: str, patterns: list[str]) -> str | None:
    return next((p for p in patterns if fnmatchcase(name, p)), None)


class Policy:
    """Evaluates a `PolicyConfig` for tool calls."""

    def __init__(self, config: PolicyConfig | None = None) -> None:
        self.config = config or PolicyConfig()

    def _tenant(self, tenant_id: str) -> TenantPolicy:
        return self.config.tenants.get(tenant_id, TenantPolicy())

    def check_tool(self, spec: ToolSpec[Any, Any], tenant_id: str) -> PolicyDecision:
        """Whether the tenant may call this tool at all."""
        tenant = self._tenant(tenant_id)
        denials = [
            (_matches(spec.name, tenant.deny), f"tenant {tenant_id!r} denies"),
            (_matches(spec.name, self.config.deny), "the global policy denies"),
        ]
        for pattern, who in denials:
            if pattern is not None:
                return _deny("tool", f"{who} tool {spec.name!r} (rule {pattern!r}).")
        for rule, who in (
            (tenant.tools.get(spec.name), f"tenant {tenant_id!r}"),
            (self.config.tools.get(spec.name), "the global policy"),
        ):
            if rule is not None and rule.allow is False:
                return _deny("tool", f"{who} does not allow tool {spec.name!r}.")
        allow = tenant.allow if tenant.allow is not None else self.config.allow
        if _matches(spec.name, allow) is None:
            return _deny(
                "tool", f"Tool {spec.name!r} is not in the allowed tools for {tenant_id!r}."
            )
        return PolicyDecision(allowed=True)

    def check_args(
        self, spec: ToolSpec[Any, Any], args: BaseModel, tenant_id: str
    ) -> PolicyDecision:
        """Argument rules: size, and every workspace path inside the workspace and not denied."""
        size = len(canonical_json(args.model_dump(mode="json")).encode())
        if size > self.config.max_args_bytes:
            return _deny(
                "arguments",
                f"Arguments are {size} bytes, over the {self.config.max_args_bytes}-byte limit; "
                "send less (split the work into several calls).",
            )
        tenant = self._tenant(tenant_id)
        deny_paths = [*self.config.deny_paths, *tenant.deny_paths]
        for rule in (self.config.tools.get(spec.name), tenant.tools.get(spec.name)):
            if rule is not None:
                deny_paths += rule.deny_paths
        for raw in spec.values_with_format(args, PATH_FORMAT):
            path = raw.strip().rstrip("/")
            if path in ("", "."):
                continue
            try:
                normal = validate_workspace_path(path).as_posix()
            except InvalidWorkspacePath as exc:
                return _deny("arguments", f"Path outside the workspace refused: {exc}")
            pattern = _matches(normal, deny_paths)
            if pattern is not None:
                return _deny(
                    "arguments",
                    f"Path {normal!r} is protected by the policy (rule {pattern!r}); use another.",
                )
        return PolicyDecision(allowed=True)

    def approval_for(self, spec: ToolSpec[Any, Any], tenant_id: str) -> tuple[bool, str]:
        """(needs approval, why) for a call of this tool by this tenant."""
        if spec.approval == "always":
            return True, f"tool {spec.name!r} always requires approval"
        tenant = self._tenant(tenant_id)
        for rule, who in (
            (tenant.tools.get(spec.name), f"tenant {tenant_id!r} rule"),
            (self.config.tools.get(spec.name), "global rule"),
        ):
            if rule is not None and rule.require_approval is not None:
                verb = "requires" if rule.require_approval else "waives"
                return rule.require_approval, f"{who} {verb} approval for {spec.name!r}"
        if spec.approval == "never":
            return False, f"tool {spec.name!r} never requires approval"
        if spec.side_effect in tenant.approval:
            needed = tenant.approval[spec.side_effect]
            source = f"tenant {tenant_id!r}"
        else:
            needed = self.config.approval.get(spec.side_effect, True)
            source = "the global policy"
        state = "requires" if needed else "does not require"
        return needed, f"{source} {state} approval for {spec.side_effect} tools"

    def evaluate(self, spec: ToolSpec[Any, Any], args: BaseModel, tenant_id: str) -> PolicyDecision:
        """Tool check, then argument check, then the approval requirement."""
        decision = self.check_tool(spec, tenant_id)
        if decision.allowed:
            decision = self.check_args(spec, args, tenant_id)
        if not decision.allowed:
            return decision
        needed, why = self.approval_for(spec, tenant_id)
        return PolicyDecision(allowed=True, requires_approval=needed, approval_reason=why)


def _deny(stage: Literal["tool", "arguments"], reason: str) -> PolicyDecision:
    return PolicyDecision(allowed=False, stage=stage, reason=reason)
