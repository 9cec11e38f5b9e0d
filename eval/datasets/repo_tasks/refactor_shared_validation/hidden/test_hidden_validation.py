import inspect

import grades.book as book
import grades.importer as importer
from grades.validation import validate_score


def expect_error(func, *args):
    try:
        func(*args)
    except ValueError as exc:
        return str(exc)
    raise AssertionError("expected ValueError")


def test_validate_score():
    assert validate_score(0) == 0
    assert validate_score(100) == 100
    assert expect_error(validate_score, -1) == "score must be between 0 and 100, got -1"
    assert expect_error(validate_score, True) == "score must be a whole number, got True"
    assert expect_error(validate_score, "7") == "score must be a whole number, got '7'"


def test_the_check_is_written_once():
    for module in (book, importer):
        source = inspect.getsource(module)
        assert "validate_score" in source, module.__name__
        assert "score must be" not in source, module.__name__


def test_behaviour_is_unchanged():
    grade_book = book.GradeBook()
    assert expect_error(grade_book.record, "x", 150) == "score must be between 0 and 100, got 150"
    assert expect_error(importer.parse_score, "-3") == "score must be between 0 and 100, got -3"
    assert importer.parse_score(" 42 ") == 42
    assert importer.import_lines(grade_book, "cy: 10\ncy: 20") == 2
    assert grade_book.average("cy") == 15.0
