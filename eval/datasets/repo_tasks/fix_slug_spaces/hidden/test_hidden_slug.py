from textkit.slug import slugify
from textkit.words import word_count, words


def test_words_have_no_empty_pieces():
    assert words("  a  b ") == ["a", "b"]
    assert words("") == []


def test_slug_limits_words_after_dropping_blanks():
    assert slugify("a  b  c  d", max_words=2) == "a-b"
    assert slugify("What?  Why!  ") == "what-why"


def test_counts_still_work():
    assert word_count("  x y  ") == 2
