"""Free slots of a day, given its busy spans."""

from schedule.merge import merge
from schedule.ranges import Span


def free_slots(busy: list[Span], day: Span, min_length: int = 1) -> list[Span]:
    """Spans of `day` not covered by `busy`, at least `min_length` minutes long."""
    slots = []
    cursor = day.start
    for span in merge(busy):
        if span.start > cursor:
            slots.append(Span(cursor, span.start - 1))
        cursor = max(cursor, span.end + 1)
    if cursor <= day.end:
        slots.append(Span(cursor, day.end))
    return [slot for slot in slots if slot.end - slot.start + 1 >= min_length]
