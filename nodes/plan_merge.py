"""Merging one wave's changes, hunk by hunk, and finding the subtasks that edited the same lines.

Every subtask of a wave worked on its own copy of the same base files. Its change to a file is a
list of hunks (`difflib.SequenceMatcher` opcodes against the base: which base lines it replaced,
and with what). Subtasks are taken in plan order: a subtask whose hunks overlap lines an earlier
one already changed in the same file is a conflict — none of its changes is merged (half a
change is worse than none), and it is handed back to be re-planned. Hunks that do not overlap
merge, in one file or across files. Touching counts as overlapping when a side inserts (two
insertions at one place, or an insertion at the edge of a replaced range, have no agreed
order), as in `git merge`. Pure functions; the graph's merge step calls `merge_wave`.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from graphs.plan_state import Conflict


@dataclass(frozen=True)
class Hunk:
    """Base lines `start`..`end` (0-based, end exclusive) become `lines` (None: file deleted)."""

    start: int
    end: int
    lines: tuple[str, ...] | None

    def overlaps(self, other: Hunk) -> bool:
        """Whether the two hunks touch the same base lines (an insertion touches its edges)."""
        if self.start == self.end or other.start == other.end:
            return self.start <= other.end and other.start <= self.end
        return self.start < other.end and other.start < self.end

    def shown(self) -> str:
        """The base lines, 1-based, as a person reads them."""
        if self.start == self.end:
            return f"insertion after line {self.start}"
        if self.end - self.start == 1:
            return f"line {self.end}"
        return f"lines {self.start + 1}-{self.end}"


def _lines(text: str | None) -> list[str]:
    return [] if text is None else text.splitlines(keepends=True)


def hunks(before: str | None, after: str | None) -> list[Hunk]:
    """The hunks that turn `before` into `after` (None: the file is missing on that side)."""
    old = _lines(before)
    if after is None:
        return [Hunk(0, len(old), None)]
    new = _lines(after)
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    return [
        Hunk(i1, i2, tuple(new[j1:j2]))
        for tag, i1, i2, j1, j2 in matcher.get_opcodes()
        if tag != "equal"
    ]


def apply_hunks(before: str | None, changes: Sequence[Hunk]) -> str | None:
    """`before` with non-overlapping hunks applied (None: a hunk deletes the file)."""
    if any(h.lines is None for h in changes):
        return None
    lines = _lines(before)
    for hunk in sorted(changes, key=lambda h: (h.start, h.end), reverse=True):
        lines[hunk.start : hunk.end] = list(hunk.lines or ())
    return "".join(lines)


@dataclass
class WaveMerge:
    """The merged files, the subtasks merged, and the conflicts of those that were not."""

    files: dict[str, str]
    merged: list[str] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)

    @property
    def dropped(self) -> list[str]:
        """The subtasks whose changes were not merged (each once, in order)."""
        return list(dict.fromkeys(c["dropped"] for c in self.conflicts))


def _clashes(
    subtask: str,
    own: Mapping[str, list[Hunk]],
    taken: Mapping[str, list[tuple[Hunk, str]]],
) -> list[Conflict]:
    found: list[Conflict] = []
    for path, mine in own.items():
        for hunk in mine:
            other = next(((h, who) for h, who in taken.get(path, []) if h.overlaps(hunk)), None)
            if other is not None:
                lines = f"{other[0].shown()} and {hunk.shown()}"
                found.append({"path": path, "kept": other[1], "dropped": subtask, "lines": lines})
                break
    return found


def merge_wave(
    base: Mapping[str, str], changes: Sequence[tuple[str, Mapping[str, str | None]]]
) -> WaveMerge:
    """Merge each subtask's `changes` (path → text after, None deleted) in the given order."""
    taken: dict[str, list[tuple[Hunk, str]]] = {}
    result = WaveMerge(files=dict(base))
    for subtask, changed in changes:
        own = {path: hunks(base.get(path), after) for path, after in changed.items()}
        clashes = _clashes(subtask, own, taken)
        if clashes:
            result.conflicts.extend(clashes)
            continue
        result.merged.append(subtask)
        for path, mine in own.items():
            taken.setdefault(path, []).extend((h, subtask) for h in mine)
    for path, pairs in taken.items():
        merged = apply_hunks(base.get(path), [h for h, _ in pairs])
        if merged is None:
            result.files.pop(path, None)
        else:
            result.files[path] = merged
    return result
