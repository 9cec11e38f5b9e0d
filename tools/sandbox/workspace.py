"""A run's host directories: the workspace tmpfs and the scratch tmpfs behind `/tmp`.

Both are size- and inode-capped tmpfs mounts owned by the sandbox uid, so filling them can
neither fill a host disk nor exhaust the host's inodes, and hard links into them from elsewhere
are impossible. Their names carry the owner marker of `markers.py`, so a SIGKILLed run's
mounts and directories can be found and removed by the janitor.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath

from tools.sandbox.base import SandboxError, SandboxLimits, SandboxUnavailable
from tools.sandbox.markers import ALIAS_KIND, SCRATCH_KIND, WORKSPACE_KIND, name_prefix

__all__ = [
    "SCRATCH_DIRS",
    "RunWorkspace",
    "alias_root_path",
    "create_workspace",
    "read_workspace_file",
    "remove_tree",
    "unmount",
]

# Directories of the scratch tmpfs, bound at /tmp and /dev/shm: one cap covers both.
SCRATCH_DIRS = {"tmp": "/tmp", "shm": "/dev/shm"}
WORKSPACE_INODES = 65536
_MIB = 1024 * 1024

_libc = ctypes.CDLL(None, use_errno=True)
_MS_NOSUID = 0x2
_MS_NODEV = 0x4
_MNT_DETACH = 0x2
_MS_BIND = 0x1000


class RunWorkspace:
    """A run's working directory on the host: a size-capped tmpfs owned by the sandbox uid.

    Files are written by the host before the run; after it, only `read_workspace_file` reads
    them back (no symlink is ever followed). `scratch`, when set, is the run's second tmpfs,
    whose `SCRATCH_DIRS` are bound at `/tmp` and `/dev/shm`. `remove` unmounts and deletes both.
    """

    def __init__(self, path: Path, *, mounted: bool, owner: int | None) -> None:
        self.path = path
        self.mounted = mounted
        self.owner = owner
        self.alias: Path | None = None
        self.scratch: RunWorkspace | None = None

    @property
    def bind_source(self) -> Path:
        """The path bubblewrap binds: the workspace, or an alias the sandbox uid can reach.

        bubblewrap resolves the source path as uid 65534, so private parent directories (such
        as pytest's 0700 temp dirs) need the alias.
        """
        return self.alias or self.path

    @classmethod
    def create(
        cls,
        root: Path | None,
        *,
        size_mb: int,
        owner: int | None,
        use_tmpfs: bool,
        inodes: int = WORKSPACE_INODES,
        kind: str = WORKSPACE_KIND,
    ) -> RunWorkspace:
        """Make an empty workspace; with `use_tmpfs` it is a tmpfs of `size_mb` (needs root).

        The directory is named with the owner marker of `kind`, so the janitor can tell whether
        the run that made it is still alive.
        """
        path = Path(tempfile.mkdtemp(prefix=name_prefix(kind), dir=root))
        mounted = False
        if use_tmpfs:
            uid = owner if owner is not None else os.getuid()
            options = f"size={size_mb * _MIB},nr_inodes={inodes},mode=0700,uid={uid},gid={uid}"
            rc = _libc.mount(
                f"strategos-{kind}".encode(),
                os.fsencode(path),
                b"tmpfs",
                _MS_NOSUID | _MS_NODEV,
                options.encode(),
            )
            if rc != 0:
                err = ctypes.get_errno()
                path.rmdir()
                raise SandboxUnavailable(
                    f"Could not mount a {size_mb} MiB tmpfs at {path}: "
                    f"{os.strerror(err)}. The local sandbox needs root (CAP_SYS_ADMIN) for it, or "
                    "strict=False to use a plain directory (its size is then not capped)."
                )
            mounted = True
        elif owner is not None:
            os.chown(path, owner, owner)
        workspace = cls(path, mounted=mounted, owner=owner)
        if owner is not None and not _reachable_by_others(path.parent):
            try:
                workspace.alias = _bind_alias(path)
            except BaseException:
                workspace.remove()
                raise
        return workspace

    def write(self, files: Mapping[PurePosixPath, str]) -> None:
        """Write the (already validated) files, owned by the sandbox uid."""
        current: PurePosixPath | None = None
        try:
            for rel, content in files.items():
                current = rel
                target = self.path.joinpath(*rel.parts)
                for depth in range(1, len(rel.parts)):
                    folder = self.path.joinpath(*rel.parts[:depth])
                    if not folder.is_dir():
                        folder.mkdir()
                        self._own(folder)
                target.write_text(content, encoding="utf-8")
                self._own(target)
        except OSError as exc:
            raise SandboxError(
                f"Could not write {current} into the sandbox workspace: "
                f"{exc.strerror}. Check that no file name is also used as a directory name"
                + (" and that the files fit in SandboxLimits.disk_mb." if self.mounted else ".")
            ) from exc

    def collect(self, names: Sequence[PurePosixPath], max_bytes: int) -> dict[str, str]:
        """Read back regular files (never through a symlink), skipping what is missing."""
        found: dict[str, str] = {}
        for rel in names:
            data = read_workspace_file(self.path, rel, max_bytes)
            if data is not None:
                found[str(rel)] = data.decode("utf-8", errors="replace")
        return found

    def add_scratch(self, limits: SandboxLimits) -> None:
        """Mount the run's scratch tmpfs next to the workspace, capped by `limits.tmp_*`.

        bubblewrap's and gVisor's own `/tmp` tmpfs take no inode cap, so a snippet could create
        files until the memory cgroup stopped it; this one is capped like the workspace. Its
        root and the `SCRATCH_DIRS` are inodes too, hence the extra ones.
        """
        scratch = RunWorkspace.create(
            self.path.parent,
            size_mb=limits.tmp_mb,
            owner=self.owner,
            use_tmpfs=True,
            inodes=limits.tmp_files + 1 + len(SCRATCH_DIRS),
            kind=SCRATCH_KIND,
        )
        self.scratch = scratch
        for name in SCRATCH_DIRS:
            folder = scratch.path / name
            folder.mkdir()
            scratch._own(folder)
            os.chmod(folder, 0o1777)

    def remove(self) -> None:
        """Unmount (lazily if something still holds it) and delete the directory and scratch."""
        try:
            if self.scratch is not None:
                self.scratch.remove()
                self.scratch = None
        finally:
            if self.alias is not None:
                unmount(self.alias)
                with contextlib.suppress(OSError):
                    self.alias.rmdir()
                self.alias = None
            if self.mounted:
                unmount(self.path)
                self.mounted = False
            remove_tree(self.path)

    def _own(self, path: Path) -> None:
        if self.owner is not None:
            os.chown(path, self.owner, self.owner, follow_symlinks=False)


def create_workspace(
    root: Path | None, limits: SandboxLimits, *, owner: int | None, use_tmpfs: bool
) -> RunWorkspace:
    """A run's workspace of `limits.disk_mb` and, on tmpfs, its scratch tmpfs (on failure, none).

    Without tmpfs (no root, `strict=False`) there is no scratch: the backend falls back to its
    own `/tmp`, capped in size only.
    """
    workspace = RunWorkspace.create(root, size_mb=limits.disk_mb, owner=owner, use_tmpfs=use_tmpfs)
    if use_tmpfs:
        try:
            workspace.add_scratch(limits)
        except BaseException:
            workspace.remove()
            raise
    return workspace


def unmount(path: Path) -> bool:
    """Unmount `path` (lazily if it is busy); True when a mount was there to remove."""
    if _libc.umount2(os.fsencode(path), 0) == 0:
        return True
    if ctypes.get_errno() == errno.EINVAL:
        return False
    return bool(_libc.umount2(os.fsencode(path), _MNT_DETACH) == 0)


def _reachable_by_others(folder: Path) -> bool:
    """True when every directory from / down to `folder` is searchable by any uid."""
    for part in [folder, *folder.parents]:
        try:
            mode = os.stat(part).st_mode
        except OSError:
            return False
        if not mode & stat.S_IXOTH:
            return False
    return True


def alias_root_path() -> Path:
    """Where this uid's workspace aliases go (the directory may not exist yet)."""
    return Path(tempfile.gettempdir()) / f"strategos-sandbox-mnt-{os.geteuid()}"


def _alias_root() -> Path:
    """A root-owned 0711 directory for workspace aliases (reachable, not listable)."""
    root = alias_root_path()
    with contextlib.suppress(FileExistsError):
        root.mkdir(mode=0o711)
    info = os.lstat(root)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
        raise SandboxUnavailable(
            f"{root} is not a directory owned by uid {os.geteuid()} and writable only by it; "
            "remove it so the sandbox can recreate it."
        )
    os.chmod(root, 0o711)
    return root


def _bind_alias(path: Path) -> Path:
    """Bind-mount `path` at a reachable alias (the workspace root's parents are private)."""
    alias = Path(tempfile.mkdtemp(prefix=name_prefix(ALIAS_KIND), dir=_alias_root()))
    if _libc.mount(os.fsencode(path), os.fsencode(alias), None, _MS_BIND, None) != 0:
        err = ctypes.get_errno()
        alias.rmdir()
        raise SandboxUnavailable(
            f"Could not bind the workspace {path} at {alias}: {os.strerror(err)}; use a "
            "workspace_root whose parent directories are searchable by uid 65534."
        )
    return alias


def read_workspace_file(root: Path, rel: PurePosixPath, max_bytes: int) -> bytes | None:
    """Read `root/rel` without following any symlink and without blocking on FIFOs.

    Every component is opened with O_NOFOLLOW relative to its parent's descriptor, so a link
    planted by the sandboxed code (`out.txt -> /etc/shadow`) yields None instead of host data.
    Files larger than `max_bytes`, devices, FIFOs and sockets are skipped too.
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(root, flags | os.O_DIRECTORY)
    except OSError:
        return None
    try:
        for part in rel.parts[:-1]:
            child = os.open(part, flags | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
        leaf = os.open(rel.parts[-1], flags | os.O_NONBLOCK, dir_fd=fd)
    except OSError:
        os.close(fd)
        return None
    os.close(fd)
    try:
        info = os.fstat(leaf)
        if not stat.S_ISREG(info.st_mode) or info.st_size > max_bytes:
            return None
        with os.fdopen(leaf, "rb", closefd=False) as handle:
            data = handle.read(max_bytes + 1)
        return data if len(data) <= max_bytes else None
    finally:
        os.close(leaf)


def remove_tree(root: Path) -> None:
    """Delete a workspace even if the sandboxed code removed permissions from its own files.

    Entries that vanish meanwhile (another janitor) are not an error.
    """

    def make_writable_and_retry(func: object, path: str, _exc: BaseException) -> None:
        with contextlib.suppress(OSError):
            parent = os.path.dirname(path)
            os.chmod(parent, os.stat(parent).st_mode | stat.S_IRWXU)
            if os.path.isdir(path) and not os.path.islink(path):
                os.chmod(path, stat.S_IRWXU)
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.unlink(path)

    shutil.rmtree(root, onexc=make_writable_and_retry)
