"""URL slugs: lower-case words joined by dashes."""

from textkit.words import words


def slugify(title: str, max_words: int = 8) -> str:
    """`"Hello, World!"` -> `"hello-world"`; at most `max_words` words are kept."""
    return "-".join(words(title)[:max_words])
