"""The tool registry: typed tool specs and the context a tool runs in.

A tool is a `ToolSpec`: a name, a semantic version, a description, pydantic models for its
arguments and its result (their JSON Schemas are the tool's contract), a side-effect class, an
approval policy, documented examples, and an async handler `handler(args, ctx) -> result`.
Tools never run on their own: `tools.gateway.ToolGateway` is the only caller of a handler.
The workspaces a handler sees are in `tools.workspaces`; the committed contract snapshots and
their drift guard in `tools.schema_snapshots`.
"""

from __future__ import annotations

import builtins
import functools
import hashlib
import json
import re
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Protocol, runtime_checkable

from pydantic import AfterValidator, BaseModel, Field, JsonValue

from tools.errors import ToolError
from tools.sandbox.base import Sandbox, SandboxLimits
from tools.workspaces import Workspace

__all__ = [
    "AnyToolSpec",
    "ApprovalPolicy",
    "CODE_FORMAT",
    "MemoryHit",
    "MemorySearch",
    "PATH_FORMAT",
    "PythonCode",
    "SideEffect",
    "ToolContext",
    "ToolExample",
    "ToolRegistry",
    "ToolSpec",
    "WorkspacePath",
    "canonical_json",
]

SideEffect = Literal["read_only", "idempotent", "side_effect", "dangerous"]
"""What a call does to the world: nothing; something safe to repeat; something that must happen
at most once; something that needs a human by default."""
ApprovalPolicy = Literal["never", "always", "on_policy"]
"""Whether a call needs a human's approval: never, always, or as `tools.policy` decides."""

PATH_FORMAT = "workspace-path"
"""JSON Schema `format` of arguments that name a file inside the task's workspace."""
CODE_FORMAT = "python-code"
"""JSON Schema `format` of arguments that carry Python source to execute."""
_SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain a NUL byte")
    return value


WorkspacePath = Annotated[
    str,
    Field(
        max_length=1024,
        json_schema_extra={"format": PATH_FORMAT},
        description="A relative POSIX path inside the task's workspace, e.g. 'pkg/mod.py'.",
    ),
    AfterValidator(_no_nul),
]
"""A path argument; the policy and the workspace both confine it to the workspace."""

PythonCode = Annotated[
    str,
    Field(min_length=1, max_length=200_000, json_schema_extra={"format": CODE_FORMAT}),
    AfterValidator(_no_nul),
]
"""Python source an argument asks to execute; the honeypot scans it."""


class MemoryHit(BaseModel):
    """One memory search result."""

    id: str
    text: str
    score: float
    metadata: dict[str, JsonValue] = Field(default_factory=dict)


@runtime_checkable
class MemorySearch(Protocol):
    """The seam `search_memory` calls once the memory package is wired in."""

    async def search(
        self, query: str, *, k: int, tenant_id: str, task_id: str, scope: str
    ) -> list[MemoryHit]:
        """Return at most `k` hits for `query`, best first, within the tenant and scope."""
        ...


@dataclass
class ToolContext:
    """What a handler may use: the task's workspace and sandbox, and who it works for."""

    workspace: Workspace
    tenant_id: str
    task_id: str
    sandbox: Sandbox | None = None
    limits: SandboxLimits = field(default_factory=SandboxLimits)
    memory: MemorySearch | None = None

    def require_sandbox(self) -> Sandbox:
        """The sandbox, or a ToolError saying that this deployment has none."""
        if self.sandbox is None:
            raise ToolError("No sandbox is configured for this task, so code cannot run here.")
        return self.sandbox


type Handler[A: BaseModel, R: BaseModel] = Callable[[A, ToolContext], Awaitable[R]]
"""`async def handler(args, ctx: ToolContext) -> Result`."""


@dataclass(frozen=True)
class ToolExample[ArgsT: BaseModel, ResultT: BaseModel]:
    """A documented call: arguments, the workspace it assumes, and what it returns."""

    title: str
    args: ArgsT
    files: Mapping[str, str] = field(default_factory=dict)
    result: ResultT | None = None
    """An example result (must validate against the result model)."""
    expect: Callable[[ResultT], bool] | None = None
    """A predicate the real result of running the example satisfies."""


@dataclass(frozen=True)
class ToolSpec[ArgsT: BaseModel, ResultT: BaseModel]:
    """Everything the gateway and the model need to know about one tool."""

    name: str
    version: str
    description: str
    args_model: type[ArgsT]
    result_model: type[ResultT]
    handler: Handler[ArgsT, ResultT]
    side_effect: SideEffect
    approval: ApprovalPolicy = "on_policy"
    examples: tuple[ToolExample[ArgsT, ResultT], ...] = ()
    simulate: Callable[[ArgsT], ResultT] | None = None
    """A plausible result returned instead of running a call the honeypot caught."""
    needs_sandbox: bool = False

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"Tool name {self.name!r} must match {_NAME.pattern}.")
        if not _SEMVER.match(self.version):
            raise ValueError(
                f"Tool {self.name}: version {self.version!r} is not MAJOR.MINOR.PATCH."
            )
        if not self.description.strip():
            raise ValueError(f"Tool {self.name} needs a description.")

    @property
    def version_tuple(self) -> tuple[int, int, int]:
        """The version as numbers, for comparisons."""
        major, minor, patch = (int(p) for p in self.version.split("."))
        return major, minor, patch

    def args_schema(self) -> dict[str, JsonValue]:
        """JSON Schema of the arguments (validation mode)."""
        return self.args_model.model_json_schema(mode="validation")

    def result_schema(self) -> dict[str, JsonValue]:
        """JSON Schema of the result (serialization mode)."""
        return self.result_model.model_json_schema(mode="serialization")

    def contract(self) -> dict[str, JsonValue]:
        """The versioned contract: everything a change of which needs a version bump."""
        return {
            "name": self.name,
            "description": self.description,
            "side_effect": self.side_effect,
            "approval": self.approval,
            "args_schema": self.args_schema(),
            "result_schema": self.result_schema(),
        }

    def json_schema(self) -> dict[str, JsonValue]:
        """The snapshot form: the contract plus its version."""
        return {"version": self.version, **self.contract()}

    def fingerprint(self) -> str:
        """sha256 of the canonical contract."""
        return hashlib.sha256(canonical_json(self.contract()).encode()).hexdigest()

    def tool_definition(self) -> dict[str, JsonValue]:
        """The OpenAI-style function definition handed to chat models."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.args_schema(),
            },
        }

    def values_with_format(self, args: BaseModel, fmt: str) -> list[str]:
        """Every string argument whose schema carries `format: fmt` (nested ones too)."""
        schema = _validation_schema(self.args_model)
        data = args.model_dump(mode="json")
        return list(_format_values(schema, schema, data, fmt))


type AnyToolSpec = ToolSpec[Any, Any]
"""The spec of whichever tool, for collections of different tools.

`ToolSpec` is invariant in its models (the handler takes the args model, `simulate` returns the
result model), so no one model type covers every tool: this is the one place `Any` stands for
them, and code that needs a tool's own models narrows with the spec's `args_model`.
"""


@functools.lru_cache(maxsize=256)
def _validation_schema(model: type[BaseModel]) -> dict[str, JsonValue]:
    """The args schema, computed once per model (internal, read-only use)."""
    return model.model_json_schema(mode="validation")


def _format_values(
    root: dict[str, JsonValue], schema: JsonValue, value: JsonValue, fmt: str
) -> Iterator[str]:
    if not isinstance(schema, dict):
        return
    if "$ref" in schema:
        name = str(schema["$ref"]).rsplit("/", 1)[-1]
        defs = root.get("$defs")
        yield from _format_values(
            root, defs.get(name) if isinstance(defs, dict) else None, value, fmt
        )
        return
    for key in ("anyOf", "oneOf", "allOf"):
        options = schema.get(key)
        for option in options if isinstance(options, list) else []:
            yield from _format_values(root, option, value, fmt)
    if isinstance(value, str) and schema.get("format") == fmt:
        yield value
    elif isinstance(value, dict):
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        for name, item in value.items():
            prop = props.get(name, extra) if isinstance(props, dict) else extra
            yield from _format_values(root, prop, item, fmt)
        names = schema.get("propertyNames")
        if isinstance(names, dict) and names.get("format") == fmt:
            yield from (str(name) for name in value)
    elif isinstance(value, list):
        for item in value:
            yield from _format_values(root, schema.get("items"), item, fmt)


def canonical_json(value: object) -> str:
    """Deterministic JSON: sorted keys, no whitespace, UTF-8 kept."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class ToolRegistry:
    """Tools by name; registering a name twice is an error."""

    def __init__(self, specs: Sequence[AnyToolSpec] = ()) -> None:
        self._specs: dict[str, AnyToolSpec] = {}
        for spec in specs:
            self.register(spec)

    def register(self, spec: AnyToolSpec) -> AnyToolSpec:
        """Add a tool; ValueError if the name is taken."""
        if spec.name in self._specs:
            raise ValueError(f"A tool named {spec.name!r} is already registered.")
        self._specs[spec.name] = spec
        return spec

    def get(self, name: str) -> AnyToolSpec:
        """The tool called `name`; KeyError naming the known tools otherwise."""
        try:
            return self._specs[name]
        except KeyError:
            raise KeyError(
                f"Unknown tool {name!r}; available: {', '.join(sorted(self._specs))}."
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __len__(self) -> int:
        return len(self._specs)

    def list(self) -> list[AnyToolSpec]:
        """Every tool, sorted by name."""
        return [self._specs[name] for name in sorted(self._specs)]

    def names(self) -> builtins.list[str]:
        """Every tool name, sorted."""
        return sorted(self._specs)

    def json_schemas(self) -> dict[str, dict[str, JsonValue]]:
        """Name → snapshot form (version, description, classes, args and result schemas)."""
        return {spec.name: spec.json_schema() for spec in self.list()}

    def tool_definitions(self) -> builtins.list[dict[str, JsonValue]]:
        """OpenAI-style function definitions of every tool."""
        return [spec.tool_definition() for spec in self.list()]
