from textkit.slug import slugify
from textkit.words import word_count


def test_simple_title():
    assert slugify("Hello, World!") == "hello-world"


def test_collapses_repeated_spaces():
    assert slugify("Ten  tips   for  Python") == "ten-tips-for-python"


def test_word_count():
    assert word_count("one two  three") == 3
