r"""The difference between a repository's original snapshot and its working copy, as a patch.

A repository task is delivered as a reviewed patch, so the patch must be exactly what the files
say: applied with `git apply` or `patch -p1` to the original it reproduces the working copy.
`difflib` writes the hunks; this module adds what it leaves out and both appliers need: the
`diff --git` header with `new file mode`/`deleted file mode` (so an empty new file or a deletion
is understood), `/dev/null` for the missing side, and the `\\ No newline at end of file` marker
(without it a file whose last line lacks a newline would gain one). Both snapshots are
path → text maps, as `tools.workspaces.Workspace.snapshot` gives them.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

__all__ = ["FileChange", "RepoDiff", "diff_snapshots", "file_patch"]

ChangeKind = Literal["added", "modified", "deleted"]
_NO_NEWLINE = "\\ No newline at end of file\n"


@dataclass(frozen=True)
class FileChange:
    """One file that differs: its text before (None: added) and after (None: deleted)."""

    path: str
    before: str | None
    after: str | None

    @property
    def kind(self) -> ChangeKind:
        """Whether the patch adds, modifies or deletes the file."""
        if self.before is None:
            return "added"
        return "deleted" if self.after is None else "modified"


@dataclass(frozen=True)
class RepoDiff:
    """The patch and the files it touches, sorted by path."""

    changes: tuple[FileChange, ...]
    patch: str

    def paths(self, kind: ChangeKind) -> list[str]:
        """Paths of the files changed in this way."""
        return [change.path for change in self.changes if change.kind == kind]


def _lines(text: str | None) -> list[str]:
    return [] if text is None else text.splitlines(keepends=True)


def _marked(lines: Iterable[str]) -> Iterator[str]:
    """Lines of `difflib`, with the marker after a line that has no newline of its own."""
    for line in lines:
        if line.endswith("\n"):
            yield line
        else:
            yield line + "\n"
            yield _NO_NEWLINE


def file_patch(change: FileChange) -> str:
    """The git-style patch of one file (header, then hunks; no hunks for an empty new file)."""
    path = change.path
    header = [f"diff --git a/{path} b/{path}\n"]
    if change.kind == "added":
        header.append("new file mode 100644\n")
    elif change.kind == "deleted":
        header.append("deleted file mode 100644\n")
    before, after = _lines(change.before), _lines(change.after)
    if not before and not after:
        return "".join(header)
    hunks = list(
        difflib.unified_diff(
            before,
            after,
            fromfile="/dev/null" if change.before is None else f"a/{path}",
            tofile="/dev/null" if change.after is None else f"b/{path}",
            n=3,
        )
    )
    # difflib's '---'/'+++' lines carry a newline already; the rest may not (last lines).
    return "".join(header) + "".join(_marked(hunks))


def diff_snapshots(original: Mapping[str, str], current: Mapping[str, str]) -> RepoDiff:
    """Every file that differs between the snapshots, and the patch that turns one into the other.

    A path in `original` only is deleted, in `current` only is added; equal texts are left out.
    """
    changes = tuple(
        FileChange(path, original.get(path), current.get(path))
        for path in sorted(set(original) | set(current))
        if original.get(path) != current.get(path)
    )
    return RepoDiff(changes=changes, patch="".join(file_patch(c) for c in changes))
