"""The task's files as tools see them: a protocol and its two implementations.

`MemoryWorkspace` holds the files in the graph state (checkpointed by LangGraph, so its writes
are replayed by the gateway); `DirWorkspace` is a directory on disk, walked one component at a
time without following symlinks. Both confine every path to the workspace, because the paths
come from a model.
"""

from __future__ import annotations

import asyncio
import errno
import os
import secrets
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from tools.errors import ToolError
from tools.sandbox.base import InvalidWorkspacePath, validate_workspace_path

__all__ = ["DirWorkspace", "MemoryWorkspace", "Workspace", "WorkspaceError"]


class WorkspaceError(ToolError):
    """A workspace operation was refused or failed (bad path, symlink, missing file …)."""


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
