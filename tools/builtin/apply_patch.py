r"""apply_patch: apply a unified diff to workspace files, all files or none.

The applier is small and strict about content, lenient about what models get wrong:
- hunk line counts in `@@ -a,b +c,d @@` are not trusted (a hunk ends at the next header);
- a hunk is applied where its context and removed lines match exactly, searching outward from
  the line number the header gives (so stale line numbers still apply); if no exact match
  exists, a match that ignores trailing whitespace is accepted; nothing fuzzier;
- `a/` and `b/` prefixes, `diff --git`, `index` and mode lines are understood; new files come
  from `--- /dev/null`, deletions go to `+++ /dev/null`; `\\ No newline at end of file` is kept.
Renames, copies and binary patches are refused with a message. Every file is computed before
anything is written, so a patch whose third hunk fails changes nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tools.errors import ToolError
from tools.registry import ToolContext, ToolExample, ToolSpec

__all__ = [
    "ApplyPatchArgs",
    "ApplyPatchResult",
    "FilePatch",
    "Hunk",
    "PatchError",
    "PatchedFile",
    "SPEC",
    "apply_hunks",
    "apply_patch",
    "parse_patch",
]

_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_NO_NEWLINE = "\\ No newline at end of file"


class PatchError(ToolError):
    """The patch is malformed or does not match the files."""


@dataclass
class Hunk:
    """One `@@` section: lines tagged ' ', '-' or '+'."""

    old_start: int
    lines: list[tuple[str, str]] = field(default_factory=list)
    old_no_newline: bool = False
    new_no_newline: bool = False

    @property
    def old(self) -> list[str]:
        """Context and removed lines: what must be found in the file."""
        return [text for tag, text in self.lines if tag in " -"]

    @property
    def new(self) -> list[str]:
        """Context and added lines: what replaces it."""
        return [text for tag, text in self.lines if tag in " +"]


@dataclass
class FilePatch:
    """The hunks of one file; a None path is /dev/null (creation or deletion)."""

    old_path: str | None
    new_path: str | None
    hunks: list[Hunk] = field(default_factory=list)

    @property
    def path(self) -> str:
        """The file this patch touches."""
        path = self.new_path or self.old_path
        assert path is not None
        return path


def _header_path(line: str, prefix: str) -> str | None:
    raw = line[4:].split("\t", 1)[0].strip()
    if raw.startswith('"') and raw.endswith('"'):
        raw = raw[1:-1]
    if raw == "/dev/null":
        return None
    if raw.startswith(prefix):
        raw = raw[len(prefix) :]
    while raw.startswith("./"):
        raw = raw[2:]
    if not raw:
        raise PatchError(f"Empty file name in header {line!r}.")
    return raw


def parse_patch(text: str) -> list[FilePatch]:
    """Parse a unified diff (one or several files)."""
    lines = text.splitlines()
    patches: list[FilePatch] = []
    current: FilePatch | None = None
    hunk: Hunk | None = None
    index = 0
    while index < len(lines):
        line = lines[index]
        if (
            line.startswith("--- ")
            and index + 1 < len(lines)
            and lines[index + 1].startswith("+++ ")
        ):
            current = FilePatch(_header_path(line, "a/"), _header_path(lines[index + 1], "b/"))
            if current.old_path is None and current.new_path is None:
                raise PatchError("A file header says /dev/null on both sides.")
            patches.append(current)
            hunk = None
            index += 2
            continue
        if line.startswith(("rename from", "rename to", "copy from", "copy to")):
            raise PatchError("Renames and copies are not supported; delete and create instead.")
        if line.startswith(("Binary files", "GIT binary patch")):
            raise PatchError("Binary patches are not supported.")
        if match := _HUNK.match(line):
            if current is None:
                raise PatchError(f"Hunk {line!r} comes before any '--- a/file' / '+++ b/file'.")
            hunk = Hunk(old_start=int(match.group(1)))
            current.hunks.append(hunk)
        elif hunk is not None and line == _NO_NEWLINE:
            if hunk.lines and hunk.lines[-1][0] in " -":
                hunk.old_no_newline = True
            if hunk.lines and hunk.lines[-1][0] in " +":
                hunk.new_no_newline = True
        elif hunk is not None and line[:1] in (" ", "-", "+"):
            hunk.lines.append((line[0], line[1:]))
        elif hunk is not None and line == "":
            hunk.lines.append((" ", ""))  # an editor stripped the context line's space
        elif line.startswith(("diff ", "index ", "new file mode", "deleted file mode")):
            hunk = None
        elif line.startswith(("old mode", "new mode", "similarity", "dissimilarity")):
            hunk = None
        elif hunk is not None:
            raise PatchError(
                f"Line {index + 1} of the patch ({line[:60]!r}) is not part of a hunk: hunk "
                "lines start with ' ', '-' or '+'."
            )
        index += 1
    if not patches:
        raise PatchError(
            "No file headers found; a unified diff starts with '--- a/path' and '+++ b/path' "
            "lines followed by '@@ -l,s +l,s @@' hunks."
        )
    for patch in patches:
        if not patch.hunks:
            raise PatchError(f"The patch for {patch.path!r} has no hunks.")
    return patches


def _find(lines: list[str], block: list[str], start: int, lo: int) -> int | None:
    """Index where `block` occurs in `lines` at or after `lo`, nearest to `start`."""
    span = len(lines) - len(block)
    if span < lo:
        return None
    start = min(max(start, lo), span)
    for strip in (False, True):
        wanted = [b.rstrip() for b in block] if strip else block
        for distance in range(max(start - lo, span - start) + 1):
            for pos in (start - distance, start + distance) if distance else (start,):
                if lo <= pos <= span:
                    window = lines[pos : pos + len(block)]
                    if strip:
                        window = [w.rstrip() for w in window]
                    if window == wanted:
                        return pos
    return None


def apply_hunks(text: str | None, hunks: list[Hunk], path: str) -> str:
    """Apply hunks to a file's text (None for a file being created); PatchError if stale."""
    lines = (text or "").splitlines()
    final_newline = text is None or text == "" or text.endswith("\n")
    offset = 0
    lo = 0
    for number, hunk in enumerate(hunks, 1):
        old, new = hunk.old, hunk.new
        if not old:
            pos = min(max(hunk.old_start + offset, lo), len(lines))
            if hunk.old_start == 0:
                pos = lo
        else:
            found = _find(lines, old, hunk.old_start - 1 + offset, lo)
            if found is None:
                preview = "\n".join(old[:3])
                raise PatchError(
                    f"Hunk {number} of {path!r} does not apply: these lines were not found "
                    f"(read the file again and regenerate the patch):\n{preview}"
                )
            pos = found
        at_end = pos + len(old) >= len(lines)
        lines[pos : pos + len(old)] = new
        offset += len(new) - len(old)
        lo = pos + len(new)
        if at_end:
            final_newline = not hunk.new_no_newline
    if not lines:
        return ""
    return "\n".join(lines) + ("\n" if final_newline else "")


class ApplyPatchArgs(BaseModel):
    """Arguments of apply_patch."""

    model_config = ConfigDict(extra="forbid")

    patch: str = Field(
        min_length=1,
        max_length=1_000_000,
        description="A unified diff ('--- a/f', '+++ b/f', '@@ … @@' hunks), one or more files.",
    )


class PatchedFile(BaseModel):
    """What happened to one file."""

    path: str
    action: Literal["created", "modified", "deleted"]
    added: int
    removed: int


class ApplyPatchResult(BaseModel):
    """Every file the patch changed."""

    files: list[PatchedFile]


async def apply_patch(args: ApplyPatchArgs, ctx: ToolContext) -> ApplyPatchResult:
    """Apply the whole patch or nothing."""
    patches = parse_patch(args.patch)
    changes: dict[str, str | None] = {}
    report: list[PatchedFile] = []
    for patch in patches:
        path = patch.path
        if path in changes:
            raise PatchError(f"The patch touches {path!r} twice; merge its hunks into one.")
        exists = await ctx.workspace.exists(path)
        if patch.old_path is None and exists:
            raise PatchError(f"The patch creates {path!r}, which already exists; diff against it.")
        if patch.old_path is not None and not exists:
            raise PatchError(f"The patch changes {path!r}, which does not exist in the workspace.")
        if patch.old_path is not None and patch.new_path not in (None, patch.old_path):
            raise PatchError("Renames are not supported; delete and create the file instead.")
        old_text = await ctx.workspace.read(path) if exists else None
        new_text = apply_hunks(old_text, patch.hunks, path)
        added = sum(1 for h in patch.hunks for tag, _ in h.lines if tag == "+")
        removed = sum(1 for h in patch.hunks for tag, _ in h.lines if tag == "-")
        if patch.new_path is None:
            if new_text.strip():
                raise PatchError(f"Deleting {path!r} but the patch does not remove all its lines.")
            changes[path] = None
            action: Literal["created", "modified", "deleted"] = "deleted"
        else:
            changes[path] = new_text
            action = "created" if old_text is None else "modified"
        report.append(PatchedFile(path=path, action=action, added=added, removed=removed))
    await ctx.workspace.apply(changes)
    return ApplyPatchResult(files=report)


_EXAMPLE_PATCH = """\
--- a/solution.py
+++ b/solution.py
@@ -1,2 +1,2 @@
 def add(a, b):
-    return a - b
+    return a + b
"""

SPEC: ToolSpec[ApplyPatchArgs, ApplyPatchResult] = ToolSpec(
    name="apply_patch",
    version="1.0.0",
    description=(
        "Apply a unified diff to files of the task's workspace. All files change or none do. "
        "Hunks are placed where their context lines match (line numbers may be stale). Create a "
        "file with '--- /dev/null', delete one with '+++ /dev/null'. Read a file before "
        "patching it so the context lines are exact."
    ),
    args_model=ApplyPatchArgs,
    result_model=ApplyPatchResult,
    handler=apply_patch,
    side_effect="side_effect",
    approval="never",
    simulate=lambda args: ApplyPatchResult(files=[]),
    examples=(
        ToolExample(
            title="fix one line",
            args=ApplyPatchArgs(patch=_EXAMPLE_PATCH),
            files={"solution.py": "def add(a, b):\n    return a - b\n"},
            result=ApplyPatchResult(
                files=[PatchedFile(path="solution.py", action="modified", added=1, removed=1)]
            ),
            expect=lambda r: r.files[0].action == "modified",
        ),
        ToolExample(
            title="create a file",
            args=ApplyPatchArgs(
                patch="--- /dev/null\n+++ b/notes.txt\n@@ -0,0 +1,2 @@\n+first\n+second\n"
            ),
            expect=lambda r: (
                r.files == [PatchedFile(path="notes.txt", action="created", added=2, removed=0)]
            ),
        ),
    ),
)
