"""Candidates from model replies: fenced-code extraction, scaffolding, ids, pools and inputs."""

from __future__ import annotations

from typing import get_args

import pytest

from nodes import candidates as cands
from nodes.candidates import (
    Candidate,
    Origin,
    Rejected,
    accept_inputs,
    candidate_id,
    collect,
    extract_code,
    make_candidate,
    normalized,
    run_args,
    strip_scaffolding,
    syntax_error,
)
from tools.builtin import run_candidates as tool
from tools.checks import Check

ADD = "def add(a, b):\n    return a + b\n"
FENCE = "```"


def fenced(code: str, lang: str = "python") -> str:
    return f"{FENCE}{lang}\n{code}{FENCE}\n"


def accepted(made: Candidate | Rejected) -> Candidate:
    assert not isinstance(made, Rejected), made
    return made


def rejected(made: Candidate | Rejected) -> Rejected:
    assert isinstance(made, Rejected), made
    return made


# ------------------------------------------------------------------------------- extraction
@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (fenced(ADD), ADD.strip()),
        ("Here you go:\n\n" + fenced(ADD) + "\nIt adds two numbers.", ADD.strip()),
        (fenced(ADD, "py"), ADD.strip()),
        (fenced(ADD, "Python3"), ADD.strip()),
        (fenced(ADD, ""), ADD.strip()),
        ("~~~python\n" + ADD + "~~~\n", ADD.strip()),
        (
            "1. The code:\n   ```python\n   def add(a, b):\n       return a + b\n   ```\n",
            ADD.strip(),
        ),
        ("```python\n" + ADD, ADD.strip()),  # the closing fence never came
        (ADD, ADD.strip()),  # no fence, the whole reply parses
        ("Sure, here it is.\n" + ADD + "This returns the sum.\n", ADD.strip()),
    ],
    ids=[
        "one block",
        "prose around",
        "py tag",
        "Python3 tag",
        "no tag",
        "tildes",
        "indented fence",
        "unterminated",
        "no fence",
        "no fence with prose",
    ],
)
def test_extract_code_finds_the_code(reply: str, expected: str) -> None:
    assert extract_code(reply, "add") == expected


def test_of_several_blocks_the_one_defining_the_entry_point_wins() -> None:
    helper = "def helper_with_a_long_name(values):\n    return sorted(set(values))\n" * 3
    usage = ">>> add(1, 2)\n3\n"
    reply = fenced(helper) + "Usage:\n" + fenced(usage) + "Solution:\n" + fenced(ADD)
    assert extract_code(reply, "add") == ADD.strip()


def test_without_an_entry_point_match_the_longest_parsing_block_wins() -> None:
    short = "x = 1\n"
    long = "def other(a):\n    return a * 2\n"
    assert extract_code(fenced(short) + fenced(long), "add") == long.strip()


def test_other_languages_are_ignored_when_a_python_block_exists() -> None:
    shell = "pip install nothing\n" * 10
    assert extract_code(fenced(shell, "bash") + fenced(ADD), "add") == ADD.strip()


def test_a_block_that_parses_beats_a_longer_one_that_does_not() -> None:
    broken = "def add(a, b:\n    return a + b + 0 + 0 + 0\n"
    assert extract_code(fenced(broken) + fenced(ADD), "add") == ADD.strip()


def test_stray_prose_inside_a_block_is_cut() -> None:
    reply = fenced("python\n" + ADD + "\nThis function adds the numbers.\n")
    assert extract_code(reply, "add") == ADD.strip()


# ------------------------------------------------------------------------------- candidates
def test_a_reply_becomes_a_candidate_with_a_short_id() -> None:
    made = accepted(make_candidate(fenced(ADD), "greedy", "add"))
    assert made == {"id": candidate_id(ADD), "code": ADD, "origin": "greedy"}
    assert len(made["id"]) == 12 and int(made["id"], 16) >= 0


def test_code_that_does_not_parse_is_rejected_with_the_syntax_error() -> None:
    made = rejected(make_candidate(fenced("def add(a, b:\n    return a + b\n"), "sample", "add"))
    assert made.origin == "sample"
    assert "SyntaxError" in made.reason and 'File "solution.py", line 1' in made.reason
    assert made.code.startswith("def add(a, b:")


def test_a_reply_without_code_is_rejected() -> None:
    made = rejected(make_candidate("I cannot do that.", "sample", "add"))
    assert "no Python code" in made.reason and made.code == ""


def test_code_without_the_entry_point_is_rejected() -> None:
    made = rejected(make_candidate(fenced("def plus(a, b):\n    return a + b\n"), "repair", "add"))
    assert made.reason == "the code does not define `add`"


@pytest.mark.parametrize(
    "binding",
    ["add = lambda a, b: a + b", "from operator import add", "class add:\n    pass"],
)
def test_any_top_level_binding_of_the_entry_point_counts(binding: str) -> None:
    accepted(make_candidate(fenced(binding + "\n"), "sample", "add"))


def test_without_an_entry_point_any_parsing_code_is_a_candidate() -> None:
    assert accepted(make_candidate(fenced("x = 1\n"), "sample"))["code"] == "x = 1\n"


def test_layout_is_tidied() -> None:
    made = accepted(make_candidate("def add(a, b):   \r\n    return a + b\r\n\r\n\r\n", "sample"))
    assert made["code"] == ADD


# ------------------------------------------------------------------------------ scaffolding
SCAFFOLDED = """import sys
sys.setrecursionlimit(10000)
CACHE = {}

def add(a, b):
    return a + b

# Example usage
print(add(1, 2))
result = add(2, 3)
add(4, 5)
assert add(1, 1) == 2
if __name__ == "__main__":
    import doctest
    doctest.testmod()
"""


def test_examples_prints_asserts_and_main_blocks_are_stripped() -> None:
    code = strip_scaffolding(SCAFFOLDED, "add")
    assert "print" not in code and "assert" not in code and "__main__" not in code
    assert "result =" not in code and "add(4, 5)" not in code
    assert "sys.setrecursionlimit(10000)" in code and "CACHE = {}" in code
    assert "def add(a, b):" in code


def test_scaffolding_is_stripped_from_candidates() -> None:
    made = accepted(make_candidate(fenced(SCAFFOLDED), "sample", "add"))
    assert "print(" not in made["code"] and syntax_error(made["code"]) is None


def test_code_that_is_only_scaffolding_is_left_alone() -> None:
    assert strip_scaffolding("print(1)\n", None) == "print(1)\n"


def test_unparsable_code_is_not_touched_by_stripping() -> None:
    assert strip_scaffolding("print(1\n", None) == "print(1\n"


# ------------------------------------------------------------------------------------- ids
def test_ids_ignore_comments_docstrings_and_layout() -> None:
    variant = 'def add(a,b):\n    """Sum."""\n    # add them\n    return (a+b)\n'
    assert candidate_id(variant) == candidate_id(ADD)
    assert normalized(variant) == normalized(ADD)


def test_ids_differ_for_different_programs() -> None:
    assert candidate_id("def add(a, b):\n    return b + a\n") != candidate_id(ADD)


def test_a_body_that_is_only_a_docstring_still_normalizes() -> None:
    assert "pass" in normalized('def f():\n    """Only a docstring."""\n')


# ------------------------------------------------------------------------------------ pool
def test_collect_dedupes_counts_votes_and_keeps_rejects() -> None:
    pool = collect(
        [
            (fenced(ADD), "sample"),
            ("no code", "sample"),
            (fenced("def add(a, b):\n    # same\n    return a + b\n"), "greedy"),
            (fenced("def add(a, b):\n    return a - b\n"), "sample"),
        ],
        "add",
    )
    assert [c["origin"] for c in pool.candidates] == ["greedy", "sample"]
    assert pool.candidates[0]["code"] == ADD  # the first text seen is kept
    assert dict(pool.votes) == {candidate_id(ADD): 2, pool.candidates[1]["id"]: 1}
    assert [r.reason[:20] for r in pool.rejected] == ["the reply has no Pyt"]


def test_collect_stops_at_the_limit() -> None:
    replies: list[tuple[str, Origin]] = [
        (fenced(f"def add(a, b):\n    return a + b + {n}\n"), "sample") for n in range(4)
    ]
    pool = collect(replies, "add", limit=2)
    assert len(pool.candidates) == 2
    assert [r.reason for r in pool.rejected] == ["over the limit of 2 candidates"] * 2


def test_the_bounds_and_origins_match_the_tool() -> None:
    assert cands.MAX_CANDIDATES == tool.MAX_CANDIDATES
    assert cands.MAX_INPUTS == tool.MAX_INPUTS
    assert get_args(cands.Origin) == get_args(tool.Origin)


# ---------------------------------------------------------------------------------- inputs
def test_accept_inputs_keeps_literal_calls_of_the_entry_point() -> None:
    calls = [
        "add(1, 2)",
        " add(1,2) ",  # the same call
        "add(x, 2)",  # a free name
        "sub(1, 2)",  # another function
        "add(1, 2) == 3",  # not a call
        "add(",  # not Python
        "add([1, 2], {'a': (3,)})",
        "add(len('ab'), 0)",  # builtins are fine
        "add(0, 0)",
    ]
    assert accept_inputs(calls, "add", known=["add(0,0)"]) == [
        "add(1, 2)",
        "add([1, 2], {'a': (3,)})",
        "add(len('ab'), 0)",
    ]


def test_accept_inputs_stops_at_the_limit() -> None:
    assert accept_inputs([f"f({n})" for n in range(30)], "f", limit=3) == ["f(0)", "f(1)", "f(2)"]


def test_run_args_wraps_the_pool_for_the_tool() -> None:
    pool = collect([(fenced(ADD), "greedy")], "add")
    args = run_args(pool.candidates, [Check(call="add(1, 2)", expected="3")], ["add(0, 0)"])
    assert args.candidates[0].id == pool.candidates[0]["id"]
    assert args.candidates[0].origin == "greedy"
    assert [(f.path, f.content) for f in args.candidates[0].files] == [("solution.py", ADD)]
    assert [(c.call, c.expected) for c in args.checks] == [("add(1, 2)", "3")]
    assert args.inputs == ["add(0, 0)"]
