"""Small text helpers: words and URL slugs."""
