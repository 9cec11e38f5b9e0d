"""Ground-truth checks pulled from a goal's examples, and the runner's report."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from tools.checks import (
    RESULT_MARKER,
    Check,
    extract_spec_checks,
    parse_report,
    runner_files,
)


def pairs(goal: str, entry_point: str = "f") -> list[tuple[str, str]]:
    checks = extract_spec_checks(goal, entry_point)
    assert all(check.source == "spec" for check in checks)
    return [(check.call, check.expected) for check in checks]


def holds(check: Check, name: str, func: Callable[..., Any]) -> bool:
    """Whether a correct implementation satisfies the check (as the runner would judge it)."""
    return bool(eval(check.call, {name: func}) == eval(check.expected, {}))


def double(x: Any) -> Any:
    return x * 2


DOCTEST_GOAL = '''def f(x):
    """Return x doubled.

    >>> f(1)
    2
    >>> f([1, 2])
    [1, 2,
     1, 2]
    >>> f('ab')
    'abab'
    """
'''


def test_doctest_examples_become_checks() -> None:
    assert pairs(DOCTEST_GOAL) == [
        ("f(1)", "2"),
        ("f([1, 2])", "[1, 2, 1, 2]"),
        ("f('ab')", "'abab'"),
    ]


def test_every_doctest_check_holds_for_a_correct_solution() -> None:
    checks = extract_spec_checks(DOCTEST_GOAL, "f")
    assert checks
    assert all(holds(check, "f", double) for check in checks)


def test_doctest_print_examples_never_become_unpassable_checks() -> None:
    # `>>> print(f(3))` shows `6`; print() returns None, so `print(f(3)) == 6` can never pass
    # and would send a correct solution back to the coder forever.
    goal = 'def f(x):\n    """Double.\n    >>> print(f(3))\n    6\n    >>> f(2)\n    4\n    """\n'
    checks = extract_spec_checks(goal, "f")
    assert ("f(2)", "4") in [(c.call, c.expected) for c in checks]
    failing = [c.name for c in checks if not holds(c, "f", double)]
    assert failing == [], f"checks a correct solution fails: {failing}"


def test_doctest_traceback_examples_are_skipped() -> None:
    goal = ">>> f(-1)\nTraceback (most recent call last):\n  ...\nValueError: negative\n"
    assert pairs(goal) == []


def test_equality_lines_become_checks() -> None:
    goal = "Write f(x) doubling x.\nf(2) == 4\nf([0]) == [0, 0]\n"
    assert pairs(goal) == [("f(2)", "4"), ("f([0])", "[0, 0]")]


def test_arrow_lines_become_checks() -> None:
    goal = "Examples:\n    f(3) ➞ 6\n    f(0) ➞ 0\n- f(5) => 10\n* f(6) → 12\n"
    assert pairs(goal) == [("f(3)", "6"), ("f(0)", "0"), ("f(5)", "10"), ("f(6)", "12")]


def test_example_label_with_ascii_arrow_becomes_a_check() -> None:
    goal = "Double a number.\nExample: f(4) -> 8\nFor example: f(7) returns 14\n"
    assert pairs(goal) == [("f(4)", "8"), ("f(7)", "14")]


def test_trailing_comment_and_full_stop_are_dropped() -> None:
    goal = "f('a') == 'aa'  # doubled\nf([1]) == [1, 1].\n"
    assert pairs(goal) == [("f('a')", "'aa'"), ("f([1])", "[1, 1]")]


def test_extracted_checks_hold_for_a_correct_solution() -> None:
    goal = "f(2) == 4\nf(3) ➞ 6\nExample: f(4) -> 8\n>>> f(5)\n10\n"
    checks = extract_spec_checks(goal, "f")
    assert len(checks) == 4
    assert all(holds(check, "f", double) for check in checks)


def test_names_other_than_builtins_are_skipped() -> None:
    goal = "f(a) == true\nf(1) == x\nf(2) == True\nf(3) == len('abc')\n"
    assert pairs(goal) == [("f(2)", "True"), ("f(3)", "len('abc')")]


def test_placeholders_are_not_taken_as_examples() -> None:
    assert pairs("f(x) == y\nf(n) -> result\n") == []


def test_duplicates_are_removed() -> None:
    goal = "f(2) == 4\n>>> f(2)\n4\nExample: f(2) -> 4\nf(3) == 6\nf(2) == 4\n"
    assert pairs(goal) == [("f(2)", "4"), ("f(3)", "6")]


def test_only_the_entry_point_is_extracted() -> None:
    goal = "g(1) == 2\nff(1) == 2\nobj.f(1) == 2\nf(1) == 2\n"
    assert pairs(goal) == [("f(1)", "2")]


def test_prose_mentioning_a_call_is_not_an_example() -> None:
    assert pairs("The result of f(1) == 2 only when the moon is full.\n") == []


def test_goal_without_examples_gives_no_checks() -> None:
    assert extract_spec_checks("Write a function that doubles a number.", "f") == []


# Check


@pytest.mark.parametrize(
    ("call", "expected"),
    [("x = f(1)", "2"), ("f(1)", "import os"), ("f(1", "2"), ("f(1)", "2 2"), ("", "2")],
)
def test_check_rejects_non_expressions(call: str, expected: str) -> None:
    with pytest.raises(ValidationError):
        Check(call=call, expected=expected)


def test_check_strips_whitespace_and_names_itself() -> None:
    check = Check(call="  f(1) ", expected=" 2\n")
    assert (check.call, check.expected) == ("f(1)", "2")
    assert check.name == "f(1) == 2"
    assert check.source == "model"


# parse_report


def test_parse_report_reads_the_runner_report_after_other_output() -> None:
    report = {
        "outcomes": [
            {"name": "f(1) == 2", "source": "spec", "passed": True, "error": ""},
            {"name": "f(2) == 4", "source": "model", "passed": False, "error": "f(2) returned 3"},
        ],
        "error": "",
    }
    stdout = "debug print from the solution\n" + RESULT_MARKER + json.dumps(report) + "\n"
    parsed = parse_report(stdout, "", 0, False)
    assert parsed.error == ""
    assert [(o.name, o.passed) for o in parsed.outcomes] == [
        ("f(1) == 2", True),
        ("f(2) == 4", False),
    ]
    assert parsed.outcomes[1].error == "f(2) returned 3"


def test_parse_report_turns_a_crash_into_an_error_with_the_traceback() -> None:
    stderr = 'Traceback (most recent call last):\n  File "x"\nMemoryError\n'
    parsed = parse_report("", stderr, 1, False)
    assert parsed.outcomes == []
    assert parsed.error.startswith("the check runner crashed:")
    assert "MemoryError" in parsed.error


def test_parse_report_crash_without_output_names_the_exit_code() -> None:
    parsed = parse_report("", "", 137, False)
    assert parsed.error == "the check runner crashed: exit code 137"


def test_parse_report_turns_a_timeout_into_an_error() -> None:
    parsed = parse_report("still running...", "", -9, True)
    assert parsed.outcomes == []
    assert "timed out" in parsed.error
    assert "infinite loop" in parsed.error


def test_parse_report_with_a_cut_off_report_gives_an_error_instead_of_raising() -> None:
    # The sandbox keeps only the first bytes of stdout; a chatty solution can cut the report.
    stdout = "x" * 100 + RESULT_MARKER + '{"outcomes": [{"name": "f(1) == 2", "sour'
    parsed = parse_report(stdout, "", 0, False)
    assert parsed.outcomes == []
    assert parsed.error


# runner_files, executed with this interpreter (no sandbox)


def test_runner_reports_passes_wrong_values_and_exceptions(tmp_path: Path) -> None:
    source = "def f(x):\n    if x < 0:\n        raise ValueError('neg')\n    return x + 1\n"
    code = {"solution.py": source}
    checks = [
        Check(call="f(1)", expected="2", source="spec"),
        Check(call="f(2)", expected="4", source="spec"),
        Check(call="f(-1)", expected="0", source="model"),
    ]
    files = runner_files(code, checks, per_check_s=2)
    assert files["solution.py"] == code["solution.py"]
    assert set(files) == {"solution.py", "run_checks.py", "checks.json"}
    for name, content in files.items():
        (tmp_path / name).write_text(content)
    done = subprocess.run(
        [sys.executable, "run_checks.py"], cwd=tmp_path, capture_output=True, text=True, timeout=30
    )
    report = parse_report(done.stdout, done.stderr, done.returncode, False)
    assert report.error == ""
    assert [(o.name, o.source, o.passed) for o in report.outcomes] == [
        ("f(1) == 2", "spec", True),
        ("f(2) == 4", "spec", False),
        ("f(-1) == 0", "model", False),
    ]
    assert report.outcomes[1].error == "f(2) returned 3, expected 4"
    assert report.outcomes[2].error == "f(-1) raised ValueError: neg"


def test_runner_reports_code_that_does_not_load(tmp_path: Path) -> None:
    files = runner_files(
        {"solution.py": "import no_such_module_here\n"}, [Check(call="f(1)", expected="2")]
    )
    for name, content in files.items():
        (tmp_path / name).write_text(content)
    done = subprocess.run(
        [sys.executable, "run_checks.py"], cwd=tmp_path, capture_output=True, text=True, timeout=30
    )
    report = parse_report(done.stdout, done.stderr, done.returncode, False)
    assert report.outcomes == []
    assert "ModuleNotFoundError" in report.error


def test_a_quoted_literal_from_the_model_compares_by_value(tmp_path: Path) -> None:
    code = {"solution.py": "def f(n):\n    return [str(i) for i in range(1, n + 1)]\n"}
    checks = [
        Check(call="f(2)", expected=repr("['1', '2']")),  # a string holding the list
        Check(call="len(f(3))", expected=repr("3")),  # a string holding a number
        Check(call="f(1)", expected=repr("['2']")),  # still wrong by value
        Check(call="f(1)[0]", expected=repr("1")),  # a real string result stays a string
    ]
    for name, content in runner_files(code, checks).items():
        (tmp_path / name).write_text(content)
    done = subprocess.run(
        [sys.executable, "run_checks.py"], cwd=tmp_path, capture_output=True, text=True, timeout=30
    )
    report = parse_report(done.stdout, done.stderr, done.returncode, False)
    assert [o.passed for o in report.outcomes] == [True, True, False, True]


def test_a_doctest_line_holding_the_comparison_is_an_example() -> None:
    goal = "def f(x):\n    '''\n    >>> f([]) == 0\n    >>> f([1, 2]) == [2, 4]\n    '''\n"
    assert pairs(goal) == [("f([])", "0"), ("f([1, 2])", "[2, 4]")]


def test_json_booleans_and_null_in_an_example_are_pythons() -> None:
    goal = "f(1, 4) => true\nf(3, 2) => false\nf(0, 0) ==> null\nf(2, 2) => [true, 1]"
    assert pairs(goal) == [
        ("f(1, 4)", "True"),
        ("f(3, 2)", "False"),
        ("f(0, 0)", "None"),
        ("f(2, 2)", "[True, 1]"),
    ]
    # A name that is not one of them still makes the example unusable.
    assert pairs("f(1) => true_or_false") == []


def test_input_and_output_lines_become_checks() -> None:
    goal = (
        "def f(arr, k):\n"
        "    Example 1:\n"
        "        Input: arr = [-3, -4, 5], k = 3\n"
        "        Output: [-4, -3, 5]\n"
        "    Example 2:\n"
        "        Input: arr = [4, 4], k = 2\n"
        "\n"
        "        Output: [4, 4] (both are kept)\n"
    )
    assert pairs(goal) == [
        ("f(arr = [-3, -4, 5], k = 3)", "[-4, -3, 5]"),
        ("f(arr = [4, 4], k = 2)", "[4, 4]"),
    ]
    assert holds(extract_spec_checks(goal, "f")[0], "f", lambda arr, k: sorted(arr)[-k:])


def test_input_lines_without_output_or_with_unknown_names_give_nothing() -> None:
    one_argument = "def f(xs):\n    Input: [4,2,3]\n    Output: [2, 1]\n"
    assert pairs(one_argument) == [("f([4,2,3])", "[2, 1]")]
    wrong_name = "def f(xs):\n    Input: nums = [1]\n    Output: 1\n"
    assert pairs(wrong_name) == []
    no_def = "Input: nums = [1]\nOutput: 1\n"
    assert pairs(no_def) == []
    no_output = "def f(xs):\n    Input: [1]\n    Explanation: none\n    Output: 1\n"
    assert pairs(no_output) == []
