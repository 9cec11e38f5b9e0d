from schedule.free import free_slots
from schedule.merge import merge
from schedule.ranges import Span, overlaps

DAY = Span(540, 1020)


def test_overlap_is_inclusive():
    assert overlaps(Span(1, 5), Span(5, 9))
    assert overlaps(Span(5, 9), Span(1, 5))
    assert not overlaps(Span(1, 4), Span(5, 9))


def test_merge_sorts_and_joins():
    spans = [Span(30, 40), Span(1, 10), Span(10, 12), Span(35, 50), Span(60, 60)]
    assert merge(spans) == [Span(1, 12), Span(30, 50), Span(60, 60)]


def test_free_slots_with_a_messy_day():
    busy = [Span(1000, 1030), Span(540, 560), Span(700, 800), Span(560, 600), Span(750, 760)]
    assert free_slots(busy, DAY, min_length=30) == [Span(601, 699), Span(801, 999)]


def test_merge_does_not_change_its_input():
    spans = [Span(5, 6), Span(1, 2)]
    merge(spans)
    assert spans == [Span(5, 6), Span(1, 2)]
