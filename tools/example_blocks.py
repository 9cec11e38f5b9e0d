"""Examples written as `Input:` / `Output:` lines, as a call of the function and its value.

Task statements in the style of programming-contest sites state examples this way:

    Input: arr = [4, 2, 3], k = 2        → f(arr=[4, 2, 3], k=2)
    Output: [2, 1]                       → [2, 1]
    Input: [4,2,3]                       → f([4,2,3])

A named argument must be one of the function's parameters as the goal's `def` line names them
(otherwise the example would fail for every right program, and a wrong ground truth is worse
than none). Anything that does not parse is left out.
"""

from __future__ import annotations

import ast
import re
import warnings

__all__ = ["input_output_examples"]

_INPUT = re.compile(r"^\s*(?:[-*]\s*)?Input\s*:\s*(?P<args>\S.*?)\s*$", re.IGNORECASE)
_OUTPUT = re.compile(r"^\s*(?:[-*]\s*)?Output\s*:\s*(?P<value>\S.*?)\s*$", re.IGNORECASE)
_LOOKAHEAD = 2
"""Lines after an `Input:` line where its `Output:` may be (a blank line is common)."""


def _parse(expr: str) -> ast.expr | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)
        try:
            return ast.parse(expr, mode="eval").body
        except SyntaxError:
            return None


def _parameters(goal: str, entry_point: str) -> set[str] | None:
    """The parameter names of `def entry_point(...)` in the goal (None when it has no def)."""
    match = re.search(rf"def\s+{re.escape(entry_point)}\s*\((?P<params>[^)]*)\)", goal)
    if match is None:
        return None
    try:
        tree = ast.parse(f"def _({match.group('params')}): pass")
    except SyntaxError:
        return None
    func = tree.body[0]
    assert isinstance(func, ast.FunctionDef)
    args = func.args
    return {a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]}


def _value(text: str) -> str | None:
    """The longest prefix of `text` that is an expression (an explanation may follow it)."""
    text = text.strip()
    cuts = [len(text)] + [i for i in range(len(text) - 1, 0, -1) if text[i] in ",;. ("]
    for cut in cuts:
        candidate = text[:cut].strip().rstrip(".,;").strip()
        if candidate and _parse(candidate) is not None:
            return candidate
    return None


def _call(entry_point: str, args: str, parameters: set[str] | None) -> str | None:
    call = f"{entry_point}({args.rstrip('.;')})"
    node = _parse(call)
    if not isinstance(node, ast.Call):
        return None
    names = {keyword.arg for keyword in node.keywords}
    if names and (parameters is None or None in names or not names <= parameters):
        return None
    return call


def _output_after(lines: list[str], index: int) -> str | None:
    for follow in lines[index + 1 : index + 1 + _LOOKAHEAD]:
        if match := _OUTPUT.match(follow):
            return _value(match.group("value"))
        if follow.strip():
            return None
    return None


def input_output_examples(goal: str, entry_point: str) -> list[tuple[str, str]]:
    """(call, expected) pairs from `Input:` lines followed by an `Output:` line."""
    lines = goal.splitlines()
    parameters = _parameters(goal, entry_point)
    found: list[tuple[str, str]] = []
    for index, line in enumerate(lines):
        match = _INPUT.match(line)
        if match is None:
            continue
        expected = _output_after(lines, index)
        call = _call(entry_point, match.group("args"), parameters)
        if expected is not None and call is not None:
            found.append((call, expected))
    return found
