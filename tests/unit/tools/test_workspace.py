"""Workspaces: files stay inside, symlinks are never followed, changes are reported."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tools.workspaces import DirWorkspace, MemoryWorkspace, Workspace, WorkspaceError

ESCAPES = ["/etc/passwd", "../outside.txt", "a/../../outside.txt", "", "a//b", "./a", "a\x00b"]


@pytest.fixture(params=["memory", "dir"])
def workspace(request: pytest.FixtureRequest, tmp_path: Path) -> Workspace:
    if request.param == "memory":
        return MemoryWorkspace({"a.py": "A", "pkg/b.py": "BB"})
    root = tmp_path / "ws"
    (root / "pkg").mkdir(parents=True)
    (root / "a.py").write_text("A")
    (root / "pkg" / "b.py").write_text("BB")
    return DirWorkspace(root)


async def test_read_write_list_delete(workspace: Workspace) -> None:
    assert await workspace.read("pkg/b.py") == "BB"
    assert await workspace.write("new/deep/c.txt", "hello") is True
    assert await workspace.write("a.py", "A2") is False
    assert await workspace.listing() == [("a.py", 2), ("new/deep/c.txt", 5), ("pkg/b.py", 2)]
    assert await workspace.listing("pkg") == [("pkg/b.py", 2)]
    assert await workspace.listing("missing") == []
    await workspace.delete("a.py")
    assert not await workspace.exists("a.py")
    assert await workspace.snapshot() == {"new/deep/c.txt": "hello", "pkg/b.py": "BB"}
    with pytest.raises(WorkspaceError, match="No file 'a.py'"):
        await workspace.read("a.py")


@pytest.mark.parametrize("path", ESCAPES)
async def test_paths_that_could_escape_are_refused(workspace: Workspace, path: str) -> None:
    with pytest.raises(WorkspaceError):
        await workspace.read(path)
    with pytest.raises(WorkspaceError):
        await workspace.write(path, "x")


async def test_memory_workspace_reports_changes_in_merge_files_form() -> None:
    ws = MemoryWorkspace({"keep.py": "k", "edit.py": "1", "gone.py": "g"})
    await ws.write("edit.py", "2")
    await ws.write("new.py", "n")
    await ws.delete("gone.py")
    assert ws.changes() == {"edit.py": "2", "new.py": "n", "gone.py": ""}
    await ws.apply({"new.py": None, "other.py": "o"})
    assert sorted(ws.files) == ["edit.py", "keep.py", "other.py"]


async def test_memory_workspace_refuses_file_directory_clashes() -> None:
    ws = MemoryWorkspace({"pkg/mod.py": "x", "file": "y"})
    with pytest.raises(WorkspaceError, match="is a directory"):
        await ws.write("pkg", "z")
    with pytest.raises(WorkspaceError, match="is a file"):
        await ws.write("file/inner.py", "z")


@pytest.fixture
def escape_setup(tmp_path: Path) -> tuple[DirWorkspace, Path]:
    """A workspace containing symlinks to a secret file and directory outside it."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("TOP SECRET")
    root = tmp_path / "ws"
    root.mkdir()
    os.symlink(outside / "secret.txt", root / "link.txt")
    os.symlink(outside, root / "linkdir")
    os.symlink("../outside/secret.txt", root / "relative-link.txt")
    (root / "real.txt").write_text("ok")
    return DirWorkspace(root), outside


@pytest.mark.parametrize("path", ["link.txt", "linkdir/secret.txt", "relative-link.txt"])
async def test_symlinks_are_not_followed_for_reading(
    escape_setup: tuple[DirWorkspace, Path], path: str
) -> None:
    ws, _ = escape_setup
    with pytest.raises(WorkspaceError, match="symlink"):
        await ws.read(path)


async def test_symlinks_are_not_followed_for_writing_or_deleting(
    escape_setup: tuple[DirWorkspace, Path],
) -> None:
    ws, outside = escape_setup
    with pytest.raises(WorkspaceError):
        await ws.write("link.txt", "overwritten")
    with pytest.raises(WorkspaceError, match="symlink"):
        await ws.write("linkdir/planted.txt", "x")
    with pytest.raises(WorkspaceError, match="symlink"):
        await ws.delete("linkdir/secret.txt")
    assert (outside / "secret.txt").read_text() == "TOP SECRET"
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]


async def test_listing_and_snapshot_skip_symlinks(escape_setup: tuple[DirWorkspace, Path]) -> None:
    ws, _ = escape_setup
    assert await ws.listing() == [("real.txt", 2)]
    assert await ws.snapshot() == {"real.txt": "ok"}


async def test_dir_workspace_writes_atomically_and_refuses_huge_files(tmp_path: Path) -> None:
    ws = DirWorkspace(tmp_path, max_file_bytes=10)
    await ws.write("a.txt", "0123456789")
    with pytest.raises(WorkspaceError, match="larger than"):
        await ws.write("a.txt", "01234567890")
    assert (tmp_path / "a.txt").read_text() == "0123456789"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]
