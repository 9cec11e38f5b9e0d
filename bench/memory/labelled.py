"""A small labelled retrieval set: each query's one relevant memory shares its key."""

from __future__ import annotations

MEMORIES: dict[str, str] = {
    "slug": "slugify failed on titles with accents; strip diacritics with unicodedata first",
    "dur": "parse_duration returned minutes instead of seconds for '1h30m'",
    "csv": "the CSV reader broke on quoted fields containing commas; use the csv module",
    "tz": "timestamps were compared naive vs aware; convert everything to UTC",
    "float": "equality on floats failed in the test; compare with math.isclose",
    "recur": "the recursive fibonacci timed out for n=35; memoize with lru_cache",
    "empty": "max() raised ValueError on an empty list; return None for empty input",
    "prefs": "the user prefers pytest with parametrize over unittest classes",
    "off1": "off-by-one: range(len(xs) - 1) skipped the last element; iterate over xs directly",
    "mutdef": "a mutable default argument (list) leaked state between calls; default to None",
    "intdiv": "used / instead of // so the function returned 2.5 where an int was expected",
    "strip": "palindrome check failed on 'A man, a plan'; drop non-alphanumerics and lowercase",
    "sortkey": "sorted the words case-sensitively; sort with key=str.lower",
    "json": "json.loads failed on single-quoted keys; the input is a Python literal, use ast",
    "enc": "reading the file raised UnicodeDecodeError; open it with encoding='utf-8'",
    "regex": "the email regex accepted 'a@b'; require a dot in the domain part",
    "prime": "is_prime(1) returned True; numbers below 2 are not prime",
    "neg": "digit sum ignored the sign: abs() the number before summing digits",
    "dict": "iterating a dict while deleting keys raised RuntimeError; iterate over list(d)",
    "admin": "the user is an admin and may approve deployments without review",
}

QUERIES: dict[str, str] = {
    "slug": "make URL slugs from titles that contain é and ü",
    "dur": "convert a duration string like 2h15m to a number of seconds",
    "csv": "read rows from a comma separated file where values may be quoted",
    "tz": "compare two datetimes from different time zones",
    "float": "assert that a computed average equals 0.3",
    "recur": "compute the 40th Fibonacci number quickly",
    "empty": "largest element of a possibly empty sequence",
    "prefs": "which test framework should the tests use",
    "off1": "loop over a list and the final item is missing from the result",
    "mutdef": "function keeps remembering values from previous calls",
    "intdiv": "average of integers should be an integer, got a float",
    "strip": "check if a sentence with punctuation reads the same backwards",
    "sortkey": "alphabetical order puts uppercase words first",
    "json": "parse a string like {'a': 1} into a dictionary",
    "enc": "error decoding bytes when opening a text file",
    "regex": "validate email addresses properly",
    "prime": "primality test gives wrong answer for small numbers",
    "neg": "sum of digits of a negative number",
    "dict": "dictionary changed size during iteration",
    "admin": "can this user approve a deploy",
}
