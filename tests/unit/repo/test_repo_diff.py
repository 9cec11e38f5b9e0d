"""The delivered patch reproduces the working copy when applied to the original repository."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tools.repo_diff import diff_snapshots

ORIGINAL = {
    "pkg/__init__.py": "",
    "pkg/ops.py": "def add(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return a * b\n",
    "pkg/old.py": "X = 1\n",
    "README.md": "no newline at the end",
    "tests/test_ops.py": "from pkg.ops import add\n\n\ndef test_add():\n    assert add(2, 3)\n",
}
CURRENT = {
    "pkg/__init__.py": "",
    "pkg/ops.py": "def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    return a * b\n",
    "README.md": "no newline at the end, still none",
    "pkg/new.py": "Y = 2",
    "pkg/empty.py": "",
    "tests/test_ops.py": ORIGINAL["tests/test_ops.py"],
}


def _tree(root: Path, files: dict[str, str]) -> None:
    for path, text in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)


def _read(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): p.read_text()
        for p in root.rglob("*")
        if p.is_file() and ".git" not in p.parts
    }


def test_the_diff_lists_added_modified_and_deleted_files() -> None:
    diff = diff_snapshots(ORIGINAL, CURRENT)
    assert diff.paths("modified") == ["README.md", "pkg/ops.py"]
    assert diff.paths("added") == ["pkg/empty.py", "pkg/new.py"]
    assert diff.paths("deleted") == ["pkg/old.py"]
    assert "--- a/pkg/ops.py\n+++ b/pkg/ops.py\n" in diff.patch
    assert "--- /dev/null\n+++ b/pkg/new.py\n" in diff.patch
    assert "--- a/pkg/old.py\n+++ /dev/null\n" in diff.patch
    assert "\\ No newline at end of file" in diff.patch
    assert "tests/test_ops.py" not in diff.patch


@pytest.mark.parametrize("command", [["patch", "-p1", "--batch", "--quiet"], ["git", "apply"]])
def test_applying_the_patch_to_the_original_reproduces_the_working_copy(
    tmp_path: Path, command: list[str]
) -> None:
    _tree(tmp_path, ORIGINAL)
    patch = diff_snapshots(ORIGINAL, CURRENT).patch
    subprocess.run(command, cwd=tmp_path, input=patch, text=True, check=True, timeout=30)
    assert _read(tmp_path) == CURRENT


def test_equal_snapshots_have_no_diff() -> None:
    diff = diff_snapshots(ORIGINAL, dict(ORIGINAL))
    assert diff.changes == () and diff.patch == ""
