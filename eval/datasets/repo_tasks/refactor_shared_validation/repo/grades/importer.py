"""Importing `student: score` lines into a grade book."""

from grades.book import GradeBook


def parse_score(text: str) -> int:
    text = text.strip()
    value = int(text) if text.lstrip("-").isdigit() else text
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"score must be a whole number, got {value!r}")
    if not 0 <= value <= 100:
        raise ValueError(f"score must be between 0 and 100, got {value}")
    return value


def import_lines(book: GradeBook, text: str) -> int:
    """Record every `student: score` line; returns how many were recorded."""
    count = 0
    for line in text.splitlines():
        if line.strip():
            student, _, score = line.partition(":")
            book.record(student.strip(), parse_score(score))
            count += 1
    return count
