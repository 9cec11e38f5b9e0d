"""Inputs mutated from the goal's examples: same types, new values, deterministic, bounded."""

from __future__ import annotations

import ast

from nodes.mutation import mutated_inputs, variants
from tools.checks import Check


def _checks(*calls: str) -> list[Check]:
    return [Check(call=call, expected="0", source="spec") for call in calls]


def test_each_variant_keeps_the_argument_type() -> None:
    for value in (3, 2.5, "abc", [1, 2, 3], (1, 2), {"a": 1, "b": 2}, True):
        found = variants(value)
        assert found, value
        assert all(type(v) is type(value) for v in found), (value, found)
        assert value not in found


def test_calls_change_one_argument_of_one_example_and_never_repeat_an_example() -> None:
    calls = mutated_inputs(_checks("f([1, 2, 3], 'ab')", "f([], 'x')"), "f", limit=50)
    assert calls and len(calls) == len(set(calls))
    assert "f([1, 2, 3], 'ab')" not in calls and "f([], 'x')" not in calls
    for call in calls:
        node = ast.parse(call, mode="eval").body
        assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
        args = [ast.literal_eval(a) for a in node.args]
        assert isinstance(args[0], list) and isinstance(args[1], str)


def test_early_inputs_vary_every_example_and_the_limit_holds() -> None:
    calls = mutated_inputs(_checks("f(10)", "f(20)"), "f", limit=2)
    assert calls == ["f(11)", "f(21)"]


def test_the_same_examples_give_the_same_inputs() -> None:
    checks = _checks("g('hello', 3)", "g('', 0)")
    assert mutated_inputs(checks, "g") == mutated_inputs(checks, "g")


def test_examples_that_are_not_plain_literal_calls_give_nothing() -> None:
    checks = _checks("f(x)", "f(*[1])", "f(a=1)", "other(1)", "f(1) + 1")
    assert mutated_inputs(checks, "f") == []
