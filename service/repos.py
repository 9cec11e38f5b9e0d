"""Repository ingestion: a repository's files, copied into a task, with caps and clear refusals.

A repository task (`strategos run GOAL --repo PATH`, or the task API with an upload or the name
of an operator-allowed repository) works on a copy: the files go into the graph state, which the
checkpointer saves, so the copy survives a kill and a resume without a directory to keep. Three
sources, one result (`RepoSnapshot`):

- `ingest_dir`: a directory on this machine (the CLI's `--repo`, or `STRATEGOS_REPO_ROOTS`
  resolved by `named_repo`). It is walked without following symlinks (a symlink is left out and
  listed in `skipped`); `.git`, `__pycache__`, `.venv`, `node_modules` and tool caches are left
  out.
- `ingest_archive`: an upload (tar, tar.gz or zip bytes). A client is not trusted: every member
  path must pass `tools.sandbox.base.validate_workspace_path` (no absolute path, no `..`), and a
  link or device member refuses the whole upload.
- `named_repo`: a served request names a repository; the operator's setting maps the name to a
  directory. A request never gives a host path.

Caps (`RepoCaps`, from settings): files, total bytes, and the upload's own size; going over is a
`RepoError` whose message says which cap and by how much. Files that are not UTF-8 text (or hold
NUL bytes) cannot live in the state's path → text map: they are left out and listed in
`skipped` (they still count toward the caps).

**The graph input a repository task starts with** (`repo_input`; the repository graph,
`graphs/repo_team.py`, reads these keys):

- `goal: str` — what to do.
- `repo_files: dict[str, str]` — the original snapshot, path → text. Written once at the start
  and never changed: the patch is `tools.repo_diff.diff_snapshots(repo_files, files)`. Give it
  no merging reducer (a plain channel).
- `files: dict[str, str]` — the working copy, the same map at the start; tools work on it as a
  `tools.workspaces.MemoryWorkspace`. Empty files are common in repositories (`__init__.py`):
  `graphs.state.merge_files` treats "" as a deletion, so a working-copy channel must merge with
  a reducer that keeps "" as content (for example, replace the whole map).

The paths left out (binary files, symlinks) are `RepoSnapshot.skipped`: the CLI prints them and
the task API records them in the task's `WorkflowStarted` event; they are not state.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import stat
import tarfile
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from service.settings import Settings
from tools.sandbox.base import InvalidWorkspacePath, validate_workspace_path

__all__ = [
    "RepoCaps",
    "RepoError",
    "REPO_INPUT_KEYS",
    "RepoSnapshot",
    "SKIPPED_DIRS",
    "check_files",
    "from_request",
    "ingest_archive",
    "ingest_base64",
    "ingest_dir",
    "named_repo",
    "repo_input",
]

SKIPPED_DIRS = frozenset(
    {".git", "__pycache__", ".venv", "node_modules", ".mypy_cache", ".pytest_cache", ".ruff_cache"}
)
"""Directories never copied: version control, caches and installed environments."""


class RepoError(ValueError):
    """The repository cannot be taken: over a cap, a bad path or link, not found. One line.

    `too_big` tells a served caller's answer apart: 413 for a cap, 422 for a bad repository.
    """

    def __init__(self, message: str, *, too_big: bool = False) -> None:
        super().__init__(message)
        self.too_big = too_big


@dataclass(frozen=True)
class RepoCaps:
    """How much a repository task may bring."""

    max_files: int = 1000
    max_bytes: int = 5_000_000
    max_upload_bytes: int = 2_000_000

    @classmethod
    def from_settings(cls, settings: Settings) -> RepoCaps:
        """The operator's caps."""
        return cls(
            max_files=settings.repo_max_files,
            max_bytes=settings.repo_max_bytes,
            max_upload_bytes=settings.repo_upload_max_bytes,
        )


@dataclass
class RepoSnapshot:
    """A repository's text files (path → text) and what was left out."""

    files: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    count: int = 0
    total_bytes: int = 0

    def add(self, path: str, data: bytes, caps: RepoCaps) -> None:
        """Take one file, after checking the caps; binary content is listed as skipped."""
        self.count += 1
        self.total_bytes += len(data)
        if self.count > caps.max_files:
            raise RepoError(
                f"the repository has more than {caps.max_files} files (the cap)", too_big=True
            )
        if self.total_bytes > caps.max_bytes:
            raise RepoError(
                f"the repository is larger than {caps.max_bytes} bytes (the cap)", too_big=True
            )
        if path in self.files or path in self.skipped:
            raise RepoError(f"{path!r} appears twice in the repository")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            self.skipped.append(path)
            return
        if "\x00" in text:
            self.skipped.append(path)
        else:
            self.files[path] = text

    def finish(self) -> RepoSnapshot:
        """Refuse an empty repository or one where a file is also a directory; sort."""
        if not self.files:
            raise RepoError("the repository has no text files")
        names = set(self.files) | set(self.skipped)
        for path in names:
            parts = path.split("/")
            for depth in range(1, len(parts)):
                if "/".join(parts[:depth]) in names:
                    raise RepoError(f"{'/'.join(parts[:depth])!r} is both a file and a directory")
        self.files = dict(sorted(self.files.items()))
        self.skipped.sort()
        return self


def _kept(path: str) -> bool:
    """Whether a path is copied (not inside a skipped directory, not compiled bytecode)."""
    return not path.endswith(".pyc") and not any(p in SKIPPED_DIRS for p in path.split("/"))


def _checked(name: str) -> str:
    """A member path as the workspace will hold it; RepoError if it could escape."""
    clean = name[2:] if name.startswith("./") else name
    try:
        return validate_workspace_path(clean.rstrip("/")).as_posix()
    except InvalidWorkspacePath as exc:
        raise RepoError(f"refused path in the repository: {exc}") from None


def _read_regular(name: str, dir_fd: int, limit: int) -> bytes | None:
    """A regular file's bytes, opened without following a symlink; None if it is not one."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            return None
        return handle.read(limit + 1)


def _is_link(name: str, dir_fd: int) -> bool:
    return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)


def ingest_dir(root: Path, caps: RepoCaps) -> RepoSnapshot:
    """Copy a directory's regular files (symlinks neither followed nor copied)."""
    if not root.is_dir():
        raise RepoError(f"--repo {root} is not a directory")
    snapshot = RepoSnapshot()
    for dirpath, dirnames, filenames, dir_fd in os.fwalk(root, follow_symlinks=False):
        rel_dir = os.path.relpath(dirpath, root)
        linked = [d for d in dirnames if _is_link(d, dir_fd)]
        snapshot.skipped += [d if rel_dir == "." else f"{rel_dir}/{d}" for d in linked]
        dirnames[:] = sorted(d for d in dirnames if d not in SKIPPED_DIRS and d not in linked)
        for name in sorted(filenames):
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            if not _kept(rel):
                continue
            data = _read_regular(name, dir_fd, caps.max_bytes)
            if data is None:  # a symlink, a socket, a device: not part of the copy
                snapshot.skipped.append(rel)
                continue
            snapshot.add(_checked(rel), data, caps)
    return snapshot.finish()


def _tar_members(data: bytes, caps: RepoCaps) -> Iterator[tuple[str, bytes]]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as archive:
        for entries, member in enumerate(archive, 1):
            if entries > 4 * caps.max_files:
                raise RepoError(
                    f"the upload has more than {4 * caps.max_files} entries", too_big=True
                )
            if member.isdir():  # directories are implied by their files' paths
                continue
            path = _checked(member.name)
            if not member.isfile():
                kind = "a link" if member.issym() or member.islnk() else "not a regular file"
                raise RepoError(f"{path!r} in the upload is {kind}; only regular files are taken")
            if member.size > caps.max_bytes:
                raise RepoError(
                    f"{path!r} is larger than {caps.max_bytes} bytes (the cap)", too_big=True
                )
            handle = archive.extractfile(member)
            yield path, handle.read() if handle is not None else b""


def _zip_members(data: bytes, caps: RepoCaps) -> Iterator[tuple[str, bytes]]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        infos = archive.infolist()
        if len(infos) > 4 * caps.max_files:
            raise RepoError(f"the upload has more than {4 * caps.max_files} entries", too_big=True)
        for info in infos:
            if info.is_dir():
                continue
            path = _checked(info.filename)
            mode = info.external_attr >> 16  # Unix mode; its type bits are 0 from many tools
            if stat.S_IFMT(mode) and not stat.S_ISREG(mode):
                kind = "a link" if stat.S_ISLNK(mode) else "not a regular file"
                raise RepoError(f"{path!r} in the upload is {kind}; only regular files are taken")
            if info.file_size > caps.max_bytes:
                raise RepoError(
                    f"{path!r} is larger than {caps.max_bytes} bytes (the cap)", too_big=True
                )
            with archive.open(info) as handle:
                yield path, handle.read(caps.max_bytes + 1)


def ingest_archive(data: bytes, caps: RepoCaps) -> RepoSnapshot:
    """Take an uploaded tar, tar.gz or zip; any unsafe member refuses the whole upload."""
    if len(data) > caps.max_upload_bytes:
        raise RepoError(
            f"the upload is {len(data)} bytes, over the {caps.max_upload_bytes}-byte cap",
            too_big=True,
        )
    members = _zip_members if data[:2] == b"PK" else _tar_members
    snapshot = RepoSnapshot()
    try:
        for path, content in members(data, caps):
            if _kept(path):
                snapshot.add(path, content, caps)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
        raise RepoError(f"the upload is not a readable tar.gz or zip archive ({exc})") from None
    return snapshot.finish()


def named_repo(name: str, roots: Mapping[str, Path]) -> Path:
    """The directory an operator allowed under `name`; RepoError for any other name."""
    root = roots.get(name)
    if root is None:
        raise RepoError(f"{name!r} is not a repository this server offers (STRATEGOS_REPO_ROOTS)")
    return root


def ingest_base64(text: str, caps: RepoCaps) -> RepoSnapshot:
    """An upload sent as base64 text in a JSON body."""
    if len(text) > caps.max_upload_bytes * 4 // 3 + 4:
        raise RepoError(f"the upload is over the {caps.max_upload_bytes}-byte cap", too_big=True)
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise RepoError("the upload is not valid base64") from None
    return ingest_archive(data, caps)


REPO_INPUT_KEYS = ("repo_files", "files")
"""Run-input keys that carry a repository's files (checked on every served run)."""


def check_files(files: object, caps: RepoCaps, *, where: str = "files") -> None:
    """Refuse a served run input's file map that a repository upload could not have given."""
    try:
        _check_files(files, caps)
    except RepoError as exc:
        raise RepoError(f"{where}: {exc}", too_big=exc.too_big) from None


def _check_files(files: object, caps: RepoCaps) -> None:
    if not isinstance(files, Mapping):
        raise RepoError("must be an object of path → text")
    snapshot = RepoSnapshot()
    for path, text in files.items():
        if not isinstance(path, str) or not isinstance(text, str):
            raise RepoError("must map paths to text")
        checked = _checked(path)
        if checked != path:
            raise RepoError(f"{path!r} is not a plain relative path (use {checked!r})")
        if "\x00" in text:
            raise RepoError(f"{path!r} holds a NUL byte")
        snapshot.add(path, text.encode("utf-8", "surrogatepass"), caps)
    if snapshot.files:
        snapshot.finish()


def from_request(archive_base64: str | None, name: str | None, settings: Settings) -> RepoSnapshot:
    """A served request's repository: its upload, or the operator's directory it names."""
    caps = RepoCaps.from_settings(settings)
    if archive_base64 is not None:
        return ingest_base64(archive_base64, caps)
    root = named_repo(name or "", settings.repo_roots)
    if not root.is_dir():  # the operator's path is not the caller's business
        raise RepoError(f"{name!r} is not available on this server right now")
    return ingest_dir(root, caps)


def repo_input(goal: str, snapshot: RepoSnapshot) -> dict[str, Any]:
    """The graph input of a repository task (the keys are described in the module docstring)."""
    return {"goal": goal, "repo_files": dict(snapshot.files), "files": dict(snapshot.files)}
