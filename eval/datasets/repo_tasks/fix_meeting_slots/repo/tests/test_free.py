from schedule.free import free_slots
from schedule.merge import merge
from schedule.ranges import Span

DAY = Span(540, 1020)


def test_free_around_one_meeting():
    assert free_slots([Span(600, 659)], DAY) == [Span(540, 599), Span(660, 1020)]


def test_busy_given_out_of_order():
    busy = [Span(900, 959), Span(600, 659)]
    assert free_slots(busy, DAY) == [Span(540, 599), Span(660, 899), Span(960, 1020)]


def test_spans_sharing_an_end_minute_merge():
    assert merge([Span(600, 660), Span(660, 700)]) == [Span(600, 700)]
