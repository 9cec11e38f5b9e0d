"""The tool registry: typed tool specs, the context a tool runs in, and schema snapshots.

A tool is a `ToolSpec`: a name, a semantic version, a description, pydantic models for its
arguments and its result (their JSON Schemas are the tool's contract), a side-effect class, an
approval policy, documented examples, and an async handler `handler(args, ctx) -> result`.
Tools never run on their own: `tools.gateway.ToolGateway` is the only caller of a handler.

The committed files `tools/schemas/<name>.json` snapshot every tool's contract; the test suite
fails when a contract changes without a version bump. Regenerate them after a bump with
`python -m tools.registry --write-snapshots`.
"""

from __future__ import annotations

import argparse
import asyncio
import builtins
import errno
import functools
import hashlib
import json
import os
import re
import secrets
import stat
import sys
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol, runtime_checkable

from pydantic import AfterValidator, BaseModel, Field, JsonValue

from tools.sandbox.base import (
    InvalidWorkspacePath,
    Sandbox,
    SandboxLimits,
    validate_workspace_path,
)

__all__ = [
    "ApprovalPolicy",
    "DirWorkspace",
    "MemoryHit",
    "MemorySearch",
    "MemoryWorkspace",
    "PATH_FORMAT",
    "CODE_FORMAT",
    "PythonCode",
    "SCHEMAS_DIR",
    "SideEffect",
    "ToolContext",
    "ToolError",
    "ToolExample",
    "ToolRegistry",
    "ToolSpec",
    "Workspace",
    "WorkspaceError",
    "WorkspacePath",
    "snapshot_problems",
    "write_snapshots",
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
SCHEMAS_DIR = Path(__file__).resolve().parent / "schemas"
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


class ToolError(Exception):
    """An expected failure a tool reports to the agent (missing file, patch does not apply …).

    The message is shown to the model verbatim, so it says what to do differently.
    """


class WorkspaceError(ToolError):
    """A workspace operation was refused or failed (bad path, symlink, missing file …)."""


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


@runtime_checkable
class Workspace(Protocol):
    """The task's files. Paths are relative POSIX paths; nothing outside can be reached.

    `durable` is True when writes outlive the process (a directory on disk) and False when the
    files live in the graph state (a dict checkpointed by LangGraph); the gateway records the
    changes a ledgered call made to a non-durable workspace and re-applies them on replay.
    """

    durable: bool

    async def read(self, path: str) -> str:
        """Text of a file; WorkspaceError if it is missing, not text, or outside."""
        ...

    async def write(self, path: str, content: str) -> bool:
        """Create or replace a file (parents created); True when it did not exist before."""
        ...

    async def delete(self, path: str) -> None:
        """Remove a file; WorkspaceError if it is missing."""
        ...

    async def exists(self, path: str) -> bool:
        """Whether a regular file exists at `path`."""
        ...

    async def listing(self, prefix: str = "") -> list[tuple[str, int]]:
        """(path, size in bytes) of every file under `prefix` ('' for all), sorted."""
        ...

    async def snapshot(self) -> dict[str, str]:
        """Every text file, path → content (what a sandbox run gets a copy of)."""
        ...

    async def apply(self, changes: Mapping[str, str | None]) -> None:
        """Write each path's content, or delete it when the value is None."""
        ...


def _rel(path: str) -> str:
    """Validate a workspace path and return its normalised form (WorkspaceError if bad)."""
    try:
        return validate_workspace_path(path).as_posix()
    except InvalidWorkspacePath as exc:
        raise WorkspaceError(str(exc)) from exc


def _rel_prefix(prefix: str) -> str:
    stripped = prefix.strip().rstrip("/")
    return "" if stripped in ("", ".") else _rel(stripped)


class MemoryWorkspace:
    """Files held in memory (the graph state's `files`); `changes()` gives what to merge back."""

    durable = False

    def __init__(self, files: Mapping[str, str] | None = None) -> None:
        self.files: dict[str, str] = {_rel(k): v for k, v in (files or {}).items()}
        self._original = dict(self.files)

    async def read(self, path: str) -> str:
        """Text of a file."""
        key = _rel(path)
        if key not in self.files:
            raise WorkspaceError(f"No file {key!r} in the workspace; list_files shows what exists.")
        return self.files[key]

    async def write(self, path: str, content: str) -> bool:
        """Create or replace a file."""
        key = _rel(path)
        if any(other.startswith(key + "/") for other in self.files):
            raise WorkspaceError(f"{key!r} is a directory in the workspace; pick a file name.")
        parts = key.split("/")
        for depth in range(1, len(parts)):
            if "/".join(parts[:depth]) in self.files:
                raise WorkspaceError(
                    f"{'/'.join(parts[:depth])!r} is a file, so {key!r} cannot be created under it."
                )
        created = key not in self.files
        self.files[key] = content
        return created

    async def delete(self, path: str) -> None:
        """Remove a file."""
        key = _rel(path)
        if self.files.pop(key, None) is None:
            raise WorkspaceError(f"No file {key!r} in the workspace to delete.")

    async def exists(self, path: str) -> bool:
        """Whether the file exists."""
        return _rel(path) in self.files

    async def listing(self, prefix: str = "") -> list[tuple[str, int]]:
        """Files under `prefix`."""
        base = _rel_prefix(prefix)
        return sorted(
            (k, len(v.encode()))
            for k, v in self.files.items()
            if not base or k == base or k.startswith(base + "/")
        )

    async def snapshot(self) -> dict[str, str]:
        """A copy of every file."""
        return dict(self.files)

    async def apply(self, changes: Mapping[str, str | None]) -> None:
        """Write or delete several files."""
        for path, content in changes.items():
            if content is None:
                self.files.pop(_rel(path), None)
            else:
                await self.write(path, content)

    def changes(self) -> dict[str, str]:
        """What changed since construction, in `graphs.state.merge_files` form ('' deletes)."""
        out = {k: v for k, v in self.files.items() if self._original.get(k) != v}
        out.update({k: "" for k in self._original if k not in self.files})
        return out


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class DirWorkspace:
    """Files in a directory on disk. Symlinks are never followed.

    Every operation walks the path one component at a time from the root's file descriptor with
    `O_NOFOLLOW`, so neither `..` nor a symlink planted by sandboxed code (or swapped in between
    a check and the open) can reach anything outside the root.
    """

    durable = True

    def __init__(self, root: Path | str, *, max_file_bytes: int = 4 * 1024 * 1024) -> None:
        self.root = Path(root).resolve(strict=True)
        if not self.root.is_dir():
            raise WorkspaceError(f"Workspace root {self.root} is not a directory.")
        self.max_file_bytes = max_file_bytes

    @classmethod
    def create(cls, root: Path | str) -> DirWorkspace:
        """A workspace on `root`, creating the directory (and parents) first."""
        Path(root).mkdir(parents=True, exist_ok=True)
        return cls(root)

    def _open_dir(self, parts: Sequence[str], *, create: bool) -> int:
        fd = os.open(self.root, _DIR_FLAGS)
        try:
            for part in parts:
                if create:
                    try:
                        os.mkdir(part, 0o755, dir_fd=fd)
                    except FileExistsError:
                        pass
                nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = nxt
        except OSError as exc:
            os.close(fd)
            raise self._error(exc, "/".join(parts)) from exc
        return fd

    def _error(self, exc: OSError, path: str) -> WorkspaceError:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR) or isinstance(exc, NotADirectoryError):
            return WorkspaceError(
                f"{path!r} goes through a symlink or a file; workspace tools do not follow "
                "symlinks. Use the real path inside the workspace."
            )
        if isinstance(exc, FileNotFoundError):
            return WorkspaceError(f"No file {path!r} in the workspace; list_files shows files.")
        if isinstance(exc, IsADirectoryError):
            return WorkspaceError(f"{path!r} is a directory, not a file.")
        return WorkspaceError(f"Cannot access {path!r} in the workspace: {exc.strerror}.")

    def _read(self, key: str) -> str:
        *dirs, name = key.split("/")
        dfd = self._open_dir(dirs, create=False)
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
        except OSError as exc:
            raise self._error(exc, key) from exc
        finally:
            os.close(dfd)
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise WorkspaceError(f"{key!r} is not a regular file.")
            data = handle.read(self.max_file_bytes + 1)
        if len(data) > self.max_file_bytes:
            raise WorkspaceError(f"{key!r} is larger than {self.max_file_bytes} bytes.")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise WorkspaceError(f"{key!r} is not UTF-8 text.") from exc

    def _write(self, key: str, content: str) -> bool:
        *dirs, name = key.split("/")
        dfd = self._open_dir(dirs, create=True)
        tmp = f".{name}.strategos-tmp-{secrets.token_hex(6)}"
        try:
            try:
                before = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            except FileNotFoundError:
                before = None
            if before is not None and not stat.S_ISREG(before.st_mode):
                raise WorkspaceError(f"{key!r} exists and is not a regular file (symlink?).")
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(tmp, flags, 0o644, dir_fd=dfd)
            with os.fdopen(fd, "wb") as handle:
                handle.write(content.encode("utf-8"))
            os.replace(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
            return before is None
        except OSError as exc:
            raise self._error(exc, key) from exc
        finally:
            try:
                os.unlink(tmp, dir_fd=dfd)
            except OSError:
                pass
            os.close(dfd)

    def _delete(self, key: str) -> None:
        *dirs, name = key.split("/")
        dfd = self._open_dir(dirs, create=False)
        try:
            info = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            if stat.S_ISDIR(info.st_mode):
                raise WorkspaceError(f"{key!r} is a directory; delete the files in it instead.")
            os.unlink(name, dir_fd=dfd)
        except OSError as exc:
            raise self._error(exc, key) from exc
        finally:
            os.close(dfd)

    def _walk(self, prefix: str) -> list[tuple[str, int]]:
        parts = prefix.split("/") if prefix else []
        try:
            top = self._open_dir(parts, create=False)
        except WorkspaceError:
            return []
        out: list[tuple[str, int]] = []
        try:
            for dirpath, _dirs, files, dfd in os.fwalk(dir_fd=top, follow_symlinks=False):
                for name in files:
                    info = os.stat(name, dir_fd=dfd, follow_symlinks=False)
                    if stat.S_ISREG(info.st_mode) and ".strategos-tmp-" not in name:
                        rel = os.path.normpath(os.path.join(prefix or ".", dirpath, name))
                        out.append((rel, info.st_size))
        finally:
            os.close(top)
        return sorted(out)

    async def read(self, path: str) -> str:
        """Text of a file."""
        return await asyncio.to_thread(self._read, _rel(path))

    async def write(self, path: str, content: str) -> bool:
        """Create or replace a file atomically."""
        if len(content.encode()) > self.max_file_bytes:
            raise WorkspaceError(f"Content for {path!r} is larger than {self.max_file_bytes} B.")
        return await asyncio.to_thread(self._write, _rel(path), content)

    async def delete(self, path: str) -> None:
        """Remove a file."""
        await asyncio.to_thread(self._delete, _rel(path))

    async def exists(self, path: str) -> bool:
        """Whether a regular file exists."""
        try:
            await self.read(path)
        except WorkspaceError:
            return False
        return True

    async def listing(self, prefix: str = "") -> list[tuple[str, int]]:
        """Regular files under `prefix` (symlinks are skipped)."""
        return await asyncio.to_thread(self._walk, _rel_prefix(prefix))

    async def snapshot(self) -> dict[str, str]:
        """Every UTF-8 file no larger than the limit; others are skipped."""
        out: dict[str, str] = {}
        for path, size in await self.listing():
            if size <= self.max_file_bytes:
                try:
                    out[path] = await self.read(path)
                except WorkspaceError:
                    continue
        return out

    async def apply(self, changes: Mapping[str, str | None]) -> None:
        """Write or delete several files."""
        for path, content in changes.items():
            if content is None:
                if await self.exists(path):
                    await self.delete(path)
            else:
                await self.write(path, content)


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

    def args_schema(self) -> dict[str, Any]:
        """JSON Schema of the arguments (validation mode)."""
        return self.args_model.model_json_schema(mode="validation")

    def result_schema(self) -> dict[str, Any]:
        """JSON Schema of the result (serialization mode)."""
        return self.result_model.model_json_schema(mode="serialization")

    def contract(self) -> dict[str, Any]:
        """The versioned contract: everything a change of which needs a version bump."""
        return {
            "name": self.name,
            "description": self.description,
            "side_effect": self.side_effect,
            "approval": self.approval,
            "args_schema": self.args_schema(),
            "result_schema": self.result_schema(),
        }

    def json_schema(self) -> dict[str, Any]:
        """The snapshot form: the contract plus its version."""
        return {"version": self.version, **self.contract()}

    def fingerprint(self) -> str:
        """sha256 of the canonical contract."""
        return hashlib.sha256(canonical_json(self.contract()).encode()).hexdigest()

    def tool_definition(self) -> dict[str, Any]:
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


@functools.lru_cache(maxsize=256)
def _validation_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The args schema, computed once per model (internal, read-only use)."""
    return model.model_json_schema(mode="validation")


def _format_values(root: dict[str, Any], schema: Any, value: Any, fmt: str) -> Iterator[str]:
    if not isinstance(schema, dict):
        return
    if "$ref" in schema:
        name = str(schema["$ref"]).rsplit("/", 1)[-1]
        yield from _format_values(root, root.get("$defs", {}).get(name, {}), value, fmt)
        return
    for key in ("anyOf", "oneOf", "allOf"):
        for option in schema.get(key, []):
            yield from _format_values(root, option, value, fmt)
    if isinstance(value, str) and schema.get("format") == fmt:
        yield value
    elif isinstance(value, dict):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for name, item in value.items():
            yield from _format_values(root, props.get(name, extra), item, fmt)
        names = schema.get("propertyNames")
        if isinstance(names, dict) and names.get("format") == fmt:
            yield from (str(name) for name in value)
    elif isinstance(value, list):
        for item in value:
            yield from _format_values(root, schema.get("items"), item, fmt)


def canonical_json(value: Any) -> str:
    """Deterministic JSON: sorted keys, no whitespace, UTF-8 kept."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class ToolRegistry:
    """Tools by name; registering a name twice is an error."""

    def __init__(self, specs: Sequence[ToolSpec[Any, Any]] = ()) -> None:
        self._specs: dict[str, ToolSpec[Any, Any]] = {}
        for spec in specs:
            self.register(spec)

    def register(self, spec: ToolSpec[Any, Any]) -> ToolSpec[Any, Any]:
        """Add a tool; ValueError if the name is taken."""
        if spec.name in self._specs:
            raise ValueError(f"A tool named {spec.name!r} is already registered.")
        self._specs[spec.name] = spec
        return spec

    def get(self, name: str) -> ToolSpec[Any, Any]:
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

    def list(self) -> list[ToolSpec[Any, Any]]:
        """Every tool, sorted by name."""
        return [self._specs[name] for name in sorted(self._specs)]

    def names(self) -> builtins.list[str]:
        """Every tool name, sorted."""
        return sorted(self._specs)

    def json_schemas(self) -> dict[str, dict[str, Any]]:
        """Name → snapshot form (version, description, classes, args and result schemas)."""
        return {spec.name: spec.json_schema() for spec in self.list()}

    def tool_definitions(self) -> builtins.list[dict[str, Any]]:
        """OpenAI-style function definitions of every tool."""
        return [spec.tool_definition() for spec in self.list()]


def _contract_of(snapshot: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in snapshot.items() if k != "version"}


def snapshot_problems(registry: ToolRegistry, directory: Path = SCHEMAS_DIR) -> list[str]:
    """Every way the committed snapshots disagree with the registry (empty when in sync).

    A contract that changed while the version stayed the same is tool drift: the message asks
    for a version bump. A changed version with a stale snapshot asks for regeneration.
    """
    problems: list[str] = []
    regen = "then run `python -m tools.registry --write-snapshots`"
    for spec in registry.list():
        path = directory / f"{spec.name}.json"
        if not path.exists():
            problems.append(f"{spec.name}: no snapshot {path.name}; {regen}.")
            continue
        saved = json.loads(path.read_text())
        same_contract = canonical_json(_contract_of(saved)) == canonical_json(spec.contract())
        old = str(saved.get("version", "0.0.0"))
        if not same_contract and old == spec.version:
            problems.append(
                f"{spec.name}: its schema or description changed but its version is still "
                f"{spec.version}; bump the version (major for a breaking change), {regen}."
            )
        elif old != spec.version:
            old_tuple = tuple(int(p) for p in old.split("."))
            if old_tuple > spec.version_tuple:
                problems.append(f"{spec.name}: version went down from {old} to {spec.version}.")
            else:
                problems.append(f"{spec.name}: snapshot is for version {old}; {regen}.")
    known = {f"{name}.json" for name in registry.names()}
    for stale in sorted(p.name for p in directory.glob("*.json") if p.name not in known):
        problems.append(f"{stale}: snapshot of a tool that is not registered; delete it.")
    return problems


def write_snapshots(registry: ToolRegistry, directory: Path = SCHEMAS_DIR) -> list[Path]:
    """Write `<name>.json` for every tool and delete snapshots of unregistered tools."""
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, schema in registry.json_schemas().items():
        path = directory / f"{name}.json"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
        written.append(path)
    for path in directory.glob("*.json"):
        if path not in written:
            path.unlink()
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m tools.registry --write-snapshots | --check`."""
    parser = argparse.ArgumentParser(prog="python -m tools.registry", description=__doc__)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--write-snapshots", action="store_true", help="rewrite tools/schemas/")
    group.add_argument("--check", action="store_true", help="exit 1 if snapshots are out of date")
    options = parser.parse_args(argv)
    from tools.builtin import default_registry

    registry = default_registry()
    if options.write_snapshots:
        for path in write_snapshots(registry):
            print(path)
        return 0
    problems = snapshot_problems(registry)
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
