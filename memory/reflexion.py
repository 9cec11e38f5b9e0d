"""Reflexion memory: what the team stores when an attempt fails, and how it reads it back.

A critique or a failed attempt becomes a short, self-contained lesson ("for a task like X, this
went wrong: Y"), so a later similar task can avoid the mistake on its first attempt.
"""

from __future__ import annotations

from collections.abc import Sequence

from memory.episodic import MemoryKind, MemoryRecord, Recalled
from memory.recall_query import recall_query

MAX_LESSON_CHARS = 600
MIN_LESSON_SCORE = 0.05


def lesson_record(
    goal: str, text: str, *, kind: MemoryKind, tenant: str, task_id: str, importance: float
) -> MemoryRecord:
    """One lesson, phrased so it still makes sense next to another task's goal."""
    body = " ".join(text.split())[:MAX_LESSON_CHARS]
    return MemoryRecord(
        text=f"Task like: {recall_query(goal)}\nLesson: {body}",
        kind=kind,
        tenant=tenant,
        task_id=task_id,
        importance=importance,
    )


def lesson_texts(hits: Sequence[Recalled], *, exclude_task: str = "") -> list[str]:
    """The recalled lessons worth paging in (other tasks' only, best first)."""
    return [
        hit.record.text
        for hit in hits
        if hit.record.task_id != exclude_task and hit.score >= MIN_LESSON_SCORE
    ]


def lessons_from_task(
    runs: Sequence[dict[str, object]],
    reviews: Sequence[dict[str, object]],
    rejections: Sequence[str],
) -> list[tuple[MemoryKind, str, float]]:
    """Verified lessons of a finished task: (kind, text, importance).

    Only what was confirmed is kept: failures of the goal's own examples, reviewer claims that
    failed when run, and a human's rejection comments. Refuted claims are never stored.
    """
    lessons: list[tuple[MemoryKind, str, float]] = []
    first_failing = next((r for r in runs if _spec_failures(r)), None)
    if first_failing is not None:
        errors = "; ".join(_spec_failures(first_failing)[:3])
        lessons.append(("test_failure", f"a first attempt failed the examples: {errors}", 0.6))
    claims = {str(c) for review in reviews for c in _list(review.get("claims"))}
    confirmed = [
        str(check["error"])
        for run in runs
        for check in _checks(run)
        if check.get("name") in claims and not check.get("passed")
    ]
    for error in dict.fromkeys(confirmed):
        lessons.append(("critique", f"the reviewer found a real bug: {error}", 0.7))
    for comment in rejections:
        lessons.append(("critique", f"a human rejected the delivery and asked: {comment}", 0.9))
    return lessons


def _list(value: object) -> list[object]:
    return list(value) if isinstance(value, list) else []


def _checks(run: dict[str, object]) -> list[dict[str, object]]:
    return [c for c in _list(run.get("checks")) if isinstance(c, dict)]


def _spec_failures(run: dict[str, object]) -> list[str]:
    if run.get("error"):
        return [str(run["error"])[:300]]
    return [
        str(c["error"]) for c in _checks(run) if c.get("source") == "spec" and not c.get("passed")
    ]
