"""Inputs derived from the goal's own examples by type-aware mutation (no model call).

Candidates are told apart by running them on inputs where they may disagree. A small model asked
for such inputs often proposes calls the goal never allows (a negative length, a string where a
list is meant), and right programs then "disagree" on how they fail. Inputs mutated from the
goal's examples keep each argument's type and shape — EvalPlus's type-aware mutation: an integer
nudged by one or doubled, a string cut or extended with its own characters, a list shortened,
reversed, grown from its own elements or made of one repeated element — so they stay inside
what the goal describes, and they cost nothing to make. Pure and deterministic: the same
examples give the same inputs.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator

from nodes.candidates import MAX_INPUTS
from tools.checks import Check, parse_quietly

__all__ = ["judged_inputs", "mutated_inputs", "variants"]

_MAX_REPR = 300


def _int_variants(value: int) -> Iterator[object]:
    yield from (value + 1, value - 1, value * 2, 0, -value)


def _float_variants(value: float) -> Iterator[object]:
    yield from (value + 1.0, value / 2, -value, 0.0)


def _str_variants(value: str) -> Iterator[object]:
    if value:
        yield from (value[:-1], value + value[0], value[::-1], value.upper(), value[1:])
    yield ""


def _sequence_variants(value: list[object] | tuple[object, ...]) -> Iterator[object]:
    """Most telling first: one repeated element, reversed, shortened, shifted, grown, empty."""
    kind = type(value)
    items = list(value)
    if items:
        # Every element alike: all duplicates, and all odd or all even when they are numbers.
        yield kind([items[-1]] * len(items))
        yield from (kind(items[::-1]), kind(items[:-1]))
        if all(type(item) is int for item in items):
            yield kind([item + 1 for item in items])  # type: ignore[operator]
        yield from (kind(items[1:]), kind(items + items[:1]), kind([items[0]] * len(items)))
        yield kind(items + [items[-1]])
    yield kind([])


def variants(value: object) -> list[object]:
    """Values of the same type and shape as `value`, each one small change away."""
    found: Iterable[object] = ()
    if isinstance(value, bool):
        found = (not value,)
    elif isinstance(value, int):
        found = _int_variants(value)
    elif isinstance(value, float):
        found = _float_variants(value)
    elif isinstance(value, str):
        found = _str_variants(value)
    elif isinstance(value, list | tuple):
        found = _sequence_variants(value)
    elif isinstance(value, dict) and value:
        first = next(iter(value))
        found = ({k: v for k, v in value.items() if k != first}, {})
    return [v for v in found if v != value or type(v) is not type(value)]


def _literal_args(call: str, entry_point: str) -> list[object] | None:
    """The positional arguments of `entry_point(...)` when all are literals, else None."""
    try:
        tree = parse_quietly(call, mode="eval")
    except SyntaxError:
        return None
    body = tree.body if isinstance(tree, ast.Expression) else None
    if not isinstance(body, ast.Call) or not isinstance(body.func, ast.Name):
        return None
    if body.func.id != entry_point or body.keywords:
        return None
    try:
        return [ast.literal_eval(arg) for arg in body.args]
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None


def _render(entry_point: str, args: list[object]) -> str:
    return f"{entry_point}({', '.join(repr(a) for a in args)})"


def mutated_inputs(checks: Iterable[Check], entry_point: str, limit: int = 12) -> list[str]:
    """Up to `limit` new calls, one argument of one example changed at a time.

    Round-robin over examples and arguments, so a few inputs already vary every example; calls
    equal to an example, repeated or longer than the runner keeps are left out.
    """
    examples = [args for c in checks if (args := _literal_args(c.call, entry_point)) is not None]
    seen = {_render(entry_point, args) for args in examples}
    queues = [
        [(i, variant) for variant in variants(arg)]
        for args in examples
        for i, arg in enumerate(args)
    ]
    owners = [args for args in examples for _ in args]
    found: list[str] = []
    depth = 0
    while len(found) < limit and any(depth < len(q) for q in queues):
        for args, queue in zip(owners, queues, strict=True):
            if depth >= len(queue) or len(found) >= limit:
                continue
            index, value = queue[depth]
            call = _render(entry_point, [*args[:index], value, *args[index + 1 :]])
            if call not in seen and len(call) <= _MAX_REPR:
                seen.add(call)
                found.append(call)
        depth += 1
    return found


def judged_inputs(
    tester: list[str], checks: Iterable[Check], entry_point: str, mutated: int
) -> list[str]:
    """What candidates are compared on: the tester's inputs, then up to `mutated` new ones.

    Deterministic, so the judge's ledgered call id stays the same on a resumed task; the
    benchmark's replay calls it too, so it measures exactly what the judge runs.
    """
    room = min(mutated, MAX_INPUTS - len(tester))
    extra = mutated_inputs(checks, entry_point, room) if entry_point and room > 0 else []
    return [*tester, *(call for call in extra if call not in tester)]
