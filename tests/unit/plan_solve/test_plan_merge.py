"""A wave's changes merge hunk by hunk; overlapping edits of one file are conflicts."""

from __future__ import annotations

from nodes.plan_merge import Hunk, hunks, merge_wave

BASE = {
    "calc.py": "def add(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return a + b\n",
    "text.py": "NAME = 'x'\n",
}
FIX_ADD = BASE["calc.py"].replace("return a - b", "return a + b")
FIX_MUL = BASE["calc.py"].replace("return a + b", "return a * b")
OTHER_ADD = BASE["calc.py"].replace("return a - b", "return b + a")


def test_disjoint_hunks_in_one_file_merge() -> None:
    merged = merge_wave(BASE, [("s1", {"calc.py": FIX_ADD}), ("s2", {"calc.py": FIX_MUL})])
    assert merged.conflicts == []
    assert merged.merged == ["s1", "s2"]
    assert merged.files["calc.py"] == (
        "def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    return a * b\n"
    )
    assert merged.files["text.py"] == BASE["text.py"]


def test_overlapping_hunks_are_a_conflict_and_the_later_change_is_not_merged() -> None:
    merged = merge_wave(BASE, [("s1", {"calc.py": FIX_ADD}), ("s2", {"calc.py": OTHER_ADD})])
    assert merged.merged == ["s1"]
    assert merged.dropped == ["s2"]
    assert merged.conflicts == [
        {"path": "calc.py", "kept": "s1", "dropped": "s2", "lines": "line 2 and line 2"}
    ]
    assert merged.files["calc.py"] == FIX_ADD


def test_a_conflicting_subtask_loses_all_its_changes_not_half() -> None:
    renamed = "NAME = 'y'\n"
    changes = [
        ("s1", {"calc.py": FIX_ADD}),
        ("s2", {"text.py": renamed, "calc.py": OTHER_ADD}),
    ]
    merged = merge_wave(BASE, changes)
    assert merged.dropped == ["s2"]
    assert merged.files["text.py"] == BASE["text.py"]


def test_changes_to_different_files_merge() -> None:
    changes = [
        ("s1", {"calc.py": FIX_ADD}),
        ("s2", {"text.py": "NAME = 'y'\n", "new.py": "X = 1\n"}),
    ]
    merged = merge_wave(BASE, changes)
    assert merged.conflicts == []
    assert merged.files == {"calc.py": FIX_ADD, "text.py": "NAME = 'y'\n", "new.py": "X = 1\n"}


def test_the_same_new_file_from_two_subtasks_is_a_conflict() -> None:
    merged = merge_wave(BASE, [("s1", {"new.py": "A = 1\n"}), ("s2", {"new.py": "B = 2\n"})])
    assert merged.dropped == ["s2"]
    assert merged.files["new.py"] == "A = 1\n"


def test_a_deletion_conflicts_with_an_edit_of_the_file_and_merges_alone() -> None:
    clash = merge_wave(BASE, [("s1", {"calc.py": FIX_ADD}), ("s2", {"calc.py": None})])
    assert clash.dropped == ["s2"]
    alone = merge_wave(BASE, [("s1", {"calc.py": None}), ("s2", {"text.py": "NAME = 2\n"})])
    assert alone.conflicts == []
    assert "calc.py" not in alone.files
    assert alone.files["text.py"] == "NAME = 2\n"


def test_insertions_touching_an_edit_conflict_but_apart_they_merge() -> None:
    lines = "a\nb\nc\nd\ne\n"
    top = "a\nTOP\nb\nc\nd\ne\n"  # insertion after line 1
    edit_b = "a\nB\nc\nd\ne\n"  # replaces line 2: the insertion touches it
    tail = "a\nb\nc\nd\ne\nEND\n"
    assert merge_wave({"f": lines}, [("s1", {"f": top}), ("s2", {"f": edit_b})]).dropped == ["s2"]
    merged = merge_wave({"f": lines}, [("s1", {"f": top}), ("s2", {"f": tail})])
    assert merged.files["f"] == "a\nTOP\nb\nc\nd\ne\nEND\n"


def test_hunks_are_base_line_ranges() -> None:
    assert hunks("a\nb\nc\n", "a\nB\nc\n") == [Hunk(1, 2, ("B\n",))]
    assert hunks(None, "x\n") == [Hunk(0, 0, ("x\n",))]
    assert hunks("a\n", None) == [Hunk(0, 1, None)]
