from expenses.parse import ParseError, parse_line, parse_lines


def test_plain_line():
    assert parse_line("ann,12.5") == ("ann", 12.5)


def test_spaces_around_fields():
    assert parse_line("  bob ,  3 ") == ("bob", 3.0)


def test_comments_and_blanks_are_skipped():
    assert parse_lines("# header\n\nann,1\n") == [("ann", 1.0)]


def test_bad_line():
    try:
        parse_line("no amount here")
    except ParseError:
        return
    raise AssertionError("expected ParseError")
