"""Splitting text into words."""

PUNCTUATION = ".,;:!?'\"()"


def clean(word: str) -> str:
    """A word without surrounding punctuation, in lower case."""
    return word.strip(PUNCTUATION).lower()


def words(text: str) -> list[str]:
    """The words of `text`, cleaned, in order; empty pieces are dropped."""
    return [clean(piece) for piece in text.split(" ") if clean(piece) != "" or piece == ""]


def word_count(text: str) -> int:
    return len([word for word in words(text) if word])
