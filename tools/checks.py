"""Executable checks: ground-truth examples pulled from a goal, and the runner that executes them.

A check is a call and its expected value. Examples stated in the task's own text are ground
truth; model-written cases are kept apart because a small model's expectations are often wrong.
The runner executes every check independently inside the sandbox and reports the actual value,
so failures can be fed back verbatim ("f(2) returned 5, expected 4").
"""

from __future__ import annotations

import ast
import builtins
import json
import re
import warnings
from typing import Literal

from pydantic import BaseModel, Field, JsonValue, field_validator

from tools.example_blocks import input_output_examples

Source = Literal["spec", "model"]
RESULT_MARKER = "@@STRATEGOS-CHECKS@@"
_ARROWS = ("==>", "==", "➞", "=>", "->", "→", "should return", "returns", "should be", "=")
_JSON_LITERALS = {"true": "True", "false": "False", "null": "None"}


def parse_quietly(source: str, mode: Literal["exec", "eval"] = "exec") -> ast.AST:
    """`ast.parse` without SyntaxWarnings (model text is full of odd escapes) on the console."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)
        return ast.parse(source, mode=mode)


class Check(BaseModel):
    """`call` must evaluate to `expected`; both are Python expressions."""

    call: str = Field(min_length=1, max_length=2000)
    expected: str = Field(min_length=1, max_length=2000)
    source: Source = "model"

    @field_validator("call", "expected")
    @classmethod
    def _is_expression(cls, value: str) -> str:
        try:
            parse_quietly(value.strip(), mode="eval")
        except SyntaxError as exc:
            raise ValueError(f"not a Python expression: {value!r} ({exc.msg})") from exc
        return value.strip()

    @property
    def name(self) -> str:
        """How the check is shown to agents and users."""
        return f"{self.call} == {self.expected}"


class CheckOutcome(BaseModel):
    """What the runner observed for one check."""

    name: str
    source: Source
    passed: bool
    error: str = ""


class CheckReport(BaseModel):
    """The runner's whole report; `error` is set when the code could not even be loaded."""

    outcomes: list[CheckOutcome] = Field(default_factory=list)
    error: str = ""


def _balanced_call(text: str, start: int) -> int | None:
    """Index just past the parenthesis that closes the call opening at `start`."""
    depth, quote = 0, ""
    for index in range(start, len(text)):
        char = text[index]
        if quote:
            if char == quote and text[index - 1] != "\\":
                quote = ""
        elif char in "\"'":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
            if depth == 0:
                return index + 1
    return None


_ALLOWED_NAMES = frozenset(dir(builtins))


def free_names(expr: str, entry_point: str) -> set[str]:
    """Names an expression needs besides the function under test and the builtins."""
    tree = parse_quietly(expr, mode="eval")
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    return names - _ALLOWED_NAMES - {entry_point}


def _parses(expr: str) -> bool:
    try:
        parse_quietly(expr, mode="eval")
    except SyntaxError:
        return False
    return True


def _pythonic(expected: str) -> str:
    """`true`, `false` and `null` (as goals written for other languages say) as Python's."""
    try:
        tree = parse_quietly(expected, mode="eval")
    except SyntaxError:
        return expected
    names = [node for node in ast.walk(tree) if isinstance(node, ast.Name)]
    if not names or any(node.id not in _JSON_LITERALS for node in names):
        return expected
    for node in names:
        node.id = _JSON_LITERALS[node.id]
    return ast.unparse(tree)


def _split_expected(rest: str) -> str | None:
    """The expected value after an arrow: the longest prefix that parses as an expression."""
    rest = rest.strip()
    for arrow in _ARROWS:
        if rest.startswith(arrow):
            rest = rest[len(arrow) :].strip()
            break
    else:
        return None
    rest = re.sub(r"\s+#.*$", "", rest).strip()
    cuts = [len(rest)] + [i for i in range(len(rest) - 1, 0, -1) if rest[i] in ",;. "]
    for cut in cuts:
        candidate = _pythonic(rest[:cut].strip().rstrip(".,;").strip())
        if candidate and _parses(candidate) and not free_names(candidate, ""):
            return candidate
    return None


def _is_label(prefix: str) -> bool:
    """Text allowed before an example call on its line: nothing, a bullet, or `Example:`."""
    prefix = prefix.strip()
    if prefix in ("", "-", "*"):
        return True
    last_clause = re.split(r"[.!?]\s", prefix)[-1]
    return prefix.endswith(":") and len(last_clause) <= 25


def _inline_examples(line: str, call_start: re.Pattern[str]) -> list[Check]:
    """`f(x) == y` examples on one line, several allowed when separated by `,`, `;` or `and`."""
    examples: list[Check] = []
    matches = list(call_start.finditer(line))
    since = 0
    for number, match in enumerate(matches):
        between = line[since : match.start()].strip()
        end = _balanced_call(line, match.end() - 1)
        if end is None:
            continue
        if not (_is_label(between) or (examples and between in (",", ";", "and", ", and"))):
            since = end
            continue
        stop = matches[number + 1].start() if number + 1 < len(matches) else len(line)
        call = line[match.start() : end]
        expected = _split_expected(line[end:stop]) if end < stop else None
        if expected is None or not _parses(call):
            continue
        examples.append(Check(call=call, expected=expected, source="spec"))
        rest = line[end:stop]
        since = end + rest.find(expected) + len(expected)
    return examples


def extract_spec_checks(goal: str, entry_point: str) -> list[Check]:
    """Ground-truth checks from doctest examples and `f(x) == y` style lines in the goal."""
    lines = goal.splitlines()
    found: list[Check] = []
    call_start = re.compile(rf"(?<![\w.]){re.escape(entry_point)}\s*\(")
    for index, raw in enumerate(lines):
        line = raw.strip()
        if line.startswith(">>>"):
            expr = line[3:].strip()
            expected_lines = []
            for follow in lines[index + 1 :]:
                stripped = follow.strip()
                if not stripped or stripped.startswith((">>>", '"""', "'''")):
                    break
                expected_lines.append(stripped)
            expected = " ".join(expected_lines)
            if expr.startswith("print(") and expr.endswith(")") and _parses(expr):
                # Printed output is text: compare the printed form, not print()'s None.
                expr, expected = f"str({expr[6:-1]})", repr(expected)
            if call_start.search(expr) and expected and _parses(expr) and _parses(expected):
                found.append(Check(call=expr, expected=expected, source="spec"))
            elif not expected:
                # `>>> f(x) == y` with no output line: the comparison is the example.
                found.extend(_inline_examples(expr, call_start))
            continue
        found.extend(_inline_examples(line, call_start))
    for call, expected in input_output_examples(goal, entry_point):
        if _parses(_pythonic(expected)):
            found.append(Check(call=call, expected=_pythonic(expected), source="spec"))
    found = [c for c in found if not free_names(c.call, entry_point) | free_names(c.expected, "")]
    unique: dict[str, Check] = {check.name: check for check in found}
    return list(unique.values())


_RUNNER = r"""
import ast, json, math, signal, sys, traceback

def _unquote(actual, expected):
    # A model often writes a JSON string holding a Python literal ("[1, 2]" for [1, 2]).
    if isinstance(expected, str) and not isinstance(actual, str):
        try:
            return ast.literal_eval(expected.strip())
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return expected
    return expected

def _same(actual, expected):
    if isinstance(expected, float) or isinstance(actual, float):
        try:
            return math.isclose(actual, expected, rel_tol=1e-6, abs_tol=1e-9)
        except TypeError:
            return False
    if isinstance(expected, (list, tuple)) and isinstance(actual, (list, tuple)):
        return len(actual) == len(expected) and all(map(_same, actual, expected))
    return actual == expected

def _alarm(signum, frame):
    raise TimeoutError("timed out after %ss")

def _short(value):
    text = repr(value)
    return text if len(text) <= 300 else text[:300] + "..."

report = {"outcomes": [], "error": ""}
checks = json.load(open("checks.json"))
namespace = {"__name__": "solution"}
try:
    source = open("solution.py").read()
    exec(compile(source, "solution.py", "exec"), namespace)
except BaseException as exc:
    report["error"] = "".join(traceback.format_exception_only(type(exc), exc)).strip()[-1500:]
else:
    signal.signal(signal.SIGALRM, _alarm)
    for check in checks:
        outcome = {"name": check["call"] + " == " + check["expected"], "source": check["source"],
                   "passed": False, "error": ""}
        try:
            signal.alarm(PER_CHECK_S)
            actual = eval(check["call"], dict(namespace))
            signal.alarm(0)
            expected = _unquote(actual, eval(check["expected"], dict(namespace)))
            outcome["passed"] = bool(_same(actual, expected))
            if not outcome["passed"]:
                outcome["error"] = "%s returned %s, expected %s" % (
                    check["call"], _short(actual), _short(expected))
        except BaseException as exc:
            signal.alarm(0)
            outcome["error"] = "%s raised %s: %s" % (
                check["call"], type(exc).__name__, str(exc)[:300])
        report["outcomes"].append(outcome)
sys.stdout.write("\nMARKER" + json.dumps(report) + "\n")
"""


def runner_files(
    code_files: dict[str, str], checks: list[Check], per_check_s: int = 5
) -> dict[str, str]:
    """Workspace files that run `checks` against `solution.py` and print a JSON report."""
    runner = _RUNNER.replace("MARKER", RESULT_MARKER).replace("PER_CHECK_S", str(per_check_s))
    payload = [check.model_dump(include={"call", "expected", "source"}) for check in checks]
    return {**code_files, "run_checks.py": runner, "checks.json": json.dumps(payload)}


class ProposedCase(BaseModel):
    """A test case proposed by a model: a call and the expected value as JSON."""

    call: str = Field(min_length=1, max_length=1000)
    expected: JsonValue


def entry_point_of(goal: str, code: str = "", given: str | None = None) -> str | None:
    """The function under test: given, else the first `def` in the goal, else in the code."""
    if given:
        return given
    for text in (goal, code):
        if match := re.search(r"^\s*def\s+([A-Za-z_]\w*)\s*\(", text, re.MULTILINE):
            return match.group(1)
    return None


def accept_case(case: ProposedCase, entry_point: str) -> Check | None:
    """A model's case as a check, if it calls the function with literals only."""
    try:
        check = Check(call=case.call, expected=repr(case.expected), source="model")
    except ValueError:
        return None
    if entry_point not in check.call or free_names(check.call, entry_point):
        return None
    return check


def encode(check: Check) -> str:
    """How checks are kept in the graph state (JSON, small and stable)."""
    return json.dumps([check.call, check.expected])


def decode(item: str, source: Source) -> Check:
    """Inverse of `encode`."""
    call, expected = json.loads(item)
    return Check(call=call, expected=expected, source=source)


def parse_report(stdout: str, stderr: str, exit_code: int, timed_out: bool) -> CheckReport:
    """Read the runner's report; a crash, timeout or missing report becomes `error`."""
    if RESULT_MARKER in stdout:
        tail = stdout.rsplit(RESULT_MARKER, 1)[1].strip().splitlines() or [""]
        try:
            return CheckReport.model_validate_json(tail[0])
        except ValueError:
            return CheckReport(
                error="the check report was cut off (does the code print a lot of output?)"
            )
    if timed_out:
        return CheckReport(error="the checks timed out (an infinite loop or very slow code?)")
    detail = (stderr or stdout).strip()[-1500:] or f"exit code {exit_code}"
    return CheckReport(error=f"the check runner crashed: {detail}")
