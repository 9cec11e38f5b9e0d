"""The unified-diff applier: exact content, tolerant positions, all or nothing."""

from __future__ import annotations

import pytest

from tools.builtin.apply_patch import (
    ApplyPatchArgs,
    PatchError,
    apply_hunks,
    apply_patch,
    parse_patch,
)
from tools.registry import ToolContext
from tools.workspaces import MemoryWorkspace

ORIGINAL = "".join(f"line {i}\n" for i in range(1, 21))


def ctx(files: dict[str, str]) -> ToolContext:
    return ToolContext(workspace=MemoryWorkspace(files), tenant_id="t", task_id="task")


async def patch(files: dict[str, str], text: str) -> tuple[MemoryWorkspace, list[str]]:
    context = ctx(files)
    result = await apply_patch(ApplyPatchArgs(patch=text), context)
    assert isinstance(context.workspace, MemoryWorkspace)
    return context.workspace, [f"{f.action}:{f.path}" for f in result.files]


async def test_two_hunks_with_stale_line_numbers_and_wrong_counts() -> None:
    diff = (
        "diff --git a/f.txt b/f.txt\nindex 123..456 100644\n--- a/f.txt\n+++ b/f.txt\n"
        "@@ -9,3 +9,3 @@\n line 2\n-line 3\n+LINE THREE\n line 4\n"
        "@@ -40,2 +40,3 @@ some header text\n line 17\n+inserted\n line 18\n"
    )
    ws, report = await patch({"f.txt": ORIGINAL}, diff)
    lines = ws.files["f.txt"].splitlines()
    assert lines[1:4] == ["line 2", "LINE THREE", "line 4"]
    assert lines[16:19] == ["line 17", "inserted", "line 18"]
    assert report == ["modified:f.txt"]


async def test_create_and_delete_files() -> None:
    diff = (
        "--- /dev/null\n+++ b/pkg/new.py\n@@ -0,0 +1,2 @@\n+def f():\n+    return 1\n"
        "--- a/old.py\n+++ /dev/null\n@@ -1,1 +0,0 @@\n-print('bye')\n"
    )
    ws, report = await patch({"old.py": "print('bye')\n"}, diff)
    assert ws.files == {"pkg/new.py": "def f():\n    return 1\n"}
    assert report == ["created:pkg/new.py", "deleted:old.py"]


async def test_no_newline_at_end_of_file_is_kept_both_ways() -> None:
    diff = (
        "--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+c\n"
        "\\ No newline at end of file\n"
    )
    ws, _ = await patch({"f": "a\nb"}, diff)
    assert ws.files["f"] == "a\nc"
    diff = "--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+c\n"
    ws, _ = await patch({"f": "a\nb"}, diff)
    assert ws.files["f"] == "a\nc\n"


async def test_trailing_whitespace_differences_are_tolerated_but_content_is_not() -> None:
    diff = "--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n def f():   \n-    return 1\n+    return 2\n"
    ws, _ = await patch({"f": "def f():\n    return 1\n"}, diff)
    assert ws.files["f"] == "def f():   \n    return 2\n"
    wrong = "--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n def g():\n-    return 1\n+    return 2\n"
    with pytest.raises(PatchError, match="Hunk 1 of 'f' does not apply"):
        await patch({"f": "def f():\n    return 1\n"}, wrong)


async def test_a_failing_file_leaves_every_file_unchanged() -> None:
    diff = (
        "--- a/ok.txt\n+++ b/ok.txt\n@@ -1 +1 @@\n-old\n+new\n"
        "--- a/bad.txt\n+++ b/bad.txt\n@@ -1 +1 @@\n-not there\n+x\n"
    )
    context = ctx({"ok.txt": "old\n", "bad.txt": "something else\n"})
    with pytest.raises(PatchError):
        await apply_patch(ApplyPatchArgs(patch=diff), context)
    assert await context.workspace.read("ok.txt") == "old\n"


@pytest.mark.parametrize(
    ("diff", "message"),
    [
        ("just some text\n", "No file headers"),
        ("--- a/f\n+++ b/f\n", "has no hunks"),
        ("@@ -1 +1 @@\n-a\n+b\n", "before any"),
        ("--- a/f\n+++ b/f\n@@ -1 +1 @@\n-a\ngarbage\n", "not part of a hunk"),
        ("diff --git a/f b/g\nrename from f\nrename to g\n", "Renames"),
        ("--- a/f\n+++ b/f\nBinary files differ\n", "Binary"),
    ],
)
def test_malformed_patches_explain_what_is_wrong(diff: str, message: str) -> None:
    with pytest.raises(PatchError, match=message):
        parse_patch(diff)


@pytest.mark.parametrize(
    ("files", "diff", "message"),
    [
        ({"f": "x\n"}, "--- /dev/null\n+++ b/f\n@@ -0,0 +1 @@\n+y\n", "already exists"),
        ({}, "--- a/f\n+++ b/f\n@@ -1 +1 @@\n-a\n+b\n", "does not exist"),
        ({}, "--- a/../../etc/passwd\n+++ b/../../etc/passwd\n@@ -1 +1 @@\n-a\n+b\n", "'..'"),
        ({"f": "a\nb\n"}, "--- a/f\n+++ /dev/null\n@@ -1 +0,0 @@\n-a\n", "does not remove all"),
    ],
)
async def test_patches_that_do_not_fit_the_workspace_are_refused(
    files: dict[str, str], diff: str, message: str
) -> None:
    with pytest.raises(Exception, match=message):
        await patch(files, diff)


def test_pure_insertion_uses_the_header_position() -> None:
    [file_patch] = parse_patch("--- a/f\n+++ b/f\n@@ -2,0 +3 @@\n+between\n")
    assert apply_hunks("a\nb\nc\n", file_patch.hunks, "f") == "a\nb\nbetween\nc\n"
