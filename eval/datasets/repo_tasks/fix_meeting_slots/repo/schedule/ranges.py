"""Inclusive ranges of minutes: 540-600 is busy from minute 540 through minute 600."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Span:
    start: int
    end: int

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"span ends before it starts: {self.start}-{self.end}")


def overlaps(a: Span, b: Span) -> bool:
    """True when the two spans share at least one minute."""
    return a.start < b.end and b.start < a.end


def join(a: Span, b: Span) -> Span:
    return Span(min(a.start, b.start), max(a.end, b.end))
