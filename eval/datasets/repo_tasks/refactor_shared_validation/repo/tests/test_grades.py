from grades.book import GradeBook
from grades.importer import import_lines, parse_score


def expect_error(func, *args):
    try:
        func(*args)
    except ValueError as exc:
        return str(exc)
    raise AssertionError("expected ValueError")


def test_record_and_average():
    book = GradeBook()
    book.record("ann", 90)
    book.record("ann", 75)
    assert book.average("ann") == 82.5


def test_bad_scores():
    book = GradeBook()
    assert expect_error(book.record, "ann", 101) == "score must be between 0 and 100, got 101"
    assert expect_error(book.record, "ann", 9.5) == "score must be a whole number, got 9.5"
    assert expect_error(parse_score, "abc") == "score must be a whole number, got 'abc'"


def test_import():
    book = GradeBook()
    assert import_lines(book, "ann: 80\n\nbob:70\nann:100\n") == 3
    assert book.average("ann") == 90.0
