"""Merging busy spans that overlap."""

from schedule.ranges import Span, join, overlaps


def merge(spans: list[Span]) -> list[Span]:
    """The union of `spans` as disjoint spans in time order."""
    merged: list[Span] = []
    for span in spans:
        if merged and overlaps(merged[-1], span):
            merged[-1] = join(merged[-1], span)
        else:
            merged.append(span)
    return merged
