"""Goal → search query rewriting."""

from __future__ import annotations

from memory.recall_query import recall_query

HUMANEVAL = '''from typing import List


def has_close_elements(numbers: List[float], threshold: float) -> bool:
    """ Check if in given list of numbers, are any two numbers closer to each other than
    given threshold.
    >>> has_close_elements([1.0, 2.0, 3.0], 0.5)
    False
    """
'''


def test_keeps_first_sentence_of_plain_goal() -> None:
    q = recall_query("Write slugify(title) with tests. It lowercases. It strips dashes.")
    assert q == "Write slugify(title) with tests."


def test_humaneval_prompt_becomes_docstring_sentence_plus_function_name() -> None:
    q = recall_query(HUMANEVAL)
    assert q.startswith("Check if in given list of numbers")
    assert q.endswith("has_close_elements")
    assert "import" not in q and ">>>" not in q and "List[float]" not in q


def test_code_blocks_are_dropped_but_their_names_kept() -> None:
    goal = "Make it faster.\n```python\ndef parse_rows(data):\n    return [x for x in data]\n```"
    q = recall_query(goal)
    assert q == "Make it faster. parse_rows"


def test_error_names_and_backticked_identifiers_are_kept() -> None:
    q = recall_query("Please look at this. The `load_user` call raises KeyError sometimes.")
    assert q.startswith("Please look at this.")
    assert "load_user" in q and "KeyError" in q


def test_query_is_bounded_and_deterministic() -> None:
    goal = " ".join(f"word{i}" for i in range(200)) + "."
    q = recall_query(goal, max_words=10)
    assert len(q.split()) == 10
    assert recall_query(goal, max_words=10) == q


def test_empty_goal_gives_empty_query() -> None:
    assert recall_query("") == ""
