"""math_eval: exact mathematics with SymPy (evaluate, simplify, solve, differentiate …).

SymPy's parser calls `eval`, so untrusted text is never handed to it directly: the expression
is first parsed with Python's `ast` and accepted only if it uses numbers, names, arithmetic and
a fixed list of mathematical functions (no attributes, subscripts, strings, lambdas or
underscores), with bounded literals and exponents so `9**9**9` is refused outright.

Static bounds cannot catch every slow computation (`factorial(5000)**9999`, a hard integral),
and a thread cannot be stopped, so SymPy runs in a long-lived child process (one per event
loop, started on first use, address space capped) that is killed and replaced when a
computation exceeds `TIMEOUT_S`.
"""

from __future__ import annotations

import ast
import asyncio
import json
import re
import sys
import weakref
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tools.child_env import child_env, python_path
from tools.errors import ToolError
from tools.registry import ToolContext, ToolExample, ToolSpec

__all__ = ["MathEvalArgs", "MathEvalResult", "SPEC", "math_eval"]

TIMEOUT_S = 10.0
WORKER_MEMORY_BYTES = 2 * 1024**3
MAX_EXPONENT = 10_000
MAX_INT_DIGITS = 300
FUNCTIONS = frozenset(
    "sin cos tan cot sec csc asin acos atan atan2 acot sinh cosh tanh asinh acosh atanh exp log "
    "ln sqrt cbrt root Abs abs floor ceiling factorial binomial gcd lcm Rational re im conjugate "
    "arg sign Min Max isprime prime fibonacci totient Mod".split()
)
CONSTANTS = frozenset({"pi", "E", "e", "I", "oo", "inf"})
_LIMITED_ARGS = {"factorial": 5000, "fibonacci": 100_000, "prime": 100_000}
Operation = Literal["evaluate", "simplify", "expand", "factor", "solve", "diff", "integrate"]
_ALLOWED_NODES = (
    ast.Expression,
    ast.BinOp,
    ast.UnaryOp,
    ast.Constant,
    ast.Name,
    ast.Load,
    ast.Call,
    ast.Tuple,
    ast.List,
    ast.Add,
    ast.Sub,
    ast.Mult,
    ast.Div,
    ast.Pow,
    ast.Mod,
    ast.FloorDiv,
    ast.BitXor,
    ast.UAdd,
    ast.USub,
)


class MathEvalArgs(BaseModel):
    """Arguments of math_eval."""

    model_config = ConfigDict(extra="forbid")

    expression: str = Field(
        min_length=1,
        max_length=2000,
        description="A formula such as '2^100 + 1/3', 'sin(pi/6)' or, for solve, 'x**2 = 4'.",
    )
    operation: Operation = "evaluate"
    variable: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z][A-Za-z0-9]{0,15}$",
        description="The variable for solve/diff/integrate when the formula has several.",
    )
    digits: int = Field(default=15, ge=1, le=100, description="Digits of the decimal value.")


class MathEvalResult(BaseModel):
    """The exact result, its LaTeX, and a decimal value when it is a number."""

    operation: Operation
    result: str
    latex: str
    numeric: str | None = None
    solutions: list[str] | None = None


def _check(tree: ast.AST) -> None:
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED_NODES):
            raise ToolError(
                f"math_eval accepts numbers, names, + - * / ^ ** % and math functions only; "
                f"{type(node).__name__} is not allowed."
            )
        if isinstance(node, ast.Name) and (node.id.startswith("_") or len(node.id) > 30):
            raise ToolError(f"Name {node.id!r} is not allowed in math_eval.")
        if isinstance(node, ast.Constant):
            if not isinstance(node.value, int | float) or isinstance(node.value, bool):
                raise ToolError(f"Only numbers are allowed as literals, not {node.value!r}.")
            if isinstance(node.value, int) and len(str(abs(node.value))) > MAX_INT_DIGITS:
                raise ToolError(f"Integer literals may have at most {MAX_INT_DIGITS} digits.")
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
                name = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
                raise ToolError(
                    f"Unknown function {name!r}; allowed: {', '.join(sorted(FUNCTIONS))}."
                )
            if node.keywords:
                raise ToolError("Keyword arguments are not allowed in math_eval.")
            limit = _LIMITED_ARGS.get(node.func.id)
            if limit is not None and node.args:
                value = _constant_value(node.args[0])
                symbolic = any(isinstance(n, ast.Name) for n in ast.walk(node.args[0]))
                if (value is None and not symbolic) or (value is not None and abs(value) > limit):
                    raise ToolError(f"{node.func.id}() is limited to arguments up to {limit}.")
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow | ast.BitXor):
            exponent = node.right
            has_symbol = any(isinstance(n, ast.Name) for n in ast.walk(exponent))
            value = _constant_value(exponent)
            if not has_symbol and (value is None or abs(value) > MAX_EXPONENT):
                raise ToolError(
                    f"Exponents must be numbers up to {MAX_EXPONENT} (or symbolic); "
                    f"got {ast.unparse(exponent)!r}."
                )


def _constant_value(node: ast.AST) -> float | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return float(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        inner = _constant_value(node.operand)
        return None if inner is None else -inner if isinstance(node.op, ast.USub) else inner
    if isinstance(node, ast.BinOp) and isinstance(
        node.op, ast.Div | ast.Mult | ast.Add | ast.Sub | ast.Pow | ast.BitXor
    ):
        left, right = _constant_value(node.left), _constant_value(node.right)
        if left is None or right is None or abs(left) > 1e6 or abs(right) > 1e6:
            return None
        if isinstance(node.op, ast.Pow | ast.BitXor):
            if abs(right) > 64 or (left == 0 and right < 0):
                return None
            value = abs(left) ** right
            return value if value <= 1e30 else None
        if isinstance(node.op, ast.Div):
            return left / right if right else None
        if isinstance(node.op, ast.Mult):
            return left * right
        return left + right if isinstance(node.op, ast.Add) else left - right
    return None


def _parse(text: str) -> Any:
    import sympy  # type: ignore[import-untyped]
    from sympy.parsing.sympy_parser import (  # type: ignore[import-untyped]
        convert_xor,
        parse_expr,
        standard_transformations,
    )

    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ToolError(f"Cannot parse {text!r}: {exc.msg}. Write e.g. '2*x**2 + 1'.") from exc
    _check(tree)
    names: dict[str, Any] = {n: getattr(sympy, n) for n in FUNCTIONS if n not in ("ln", "abs")}
    names.update({"ln": sympy.log, "abs": sympy.Abs, "e": sympy.E, "E": sympy.E})
    names.update({"pi": sympy.pi, "I": sympy.I, "oo": sympy.oo, "inf": sympy.oo})
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id not in names:
            names[node.id] = sympy.Symbol(node.id)
    transformations = (*standard_transformations, convert_xor)
    # Only the constructors the parser's own transformations emit; nothing else is reachable.
    constructors = {n: getattr(sympy, n) for n in ("Integer", "Float", "Rational", "Symbol")}
    return parse_expr(
        text.strip(), local_dict=names, global_dict=constructors, transformations=transformations
    )


def _variable(expr: Any, given: str | None) -> Any:
    import sympy

    if given is not None:
        return sympy.Symbol(given)
    symbols = sorted(expr.free_symbols, key=str)
    if len(symbols) != 1:
        found = ", ".join(map(str, symbols)) or "none"
        raise ToolError(f"Say which variable to use (`variable`); the formula has: {found}.")
    return symbols[0]


def _compute(args: MathEvalArgs) -> MathEvalResult:
    import sympy

    text = args.expression
    sides = re.split(r"(?<![=<>!])=(?!=)", text)
    if len(sides) > 2:
        raise ToolError("Write one equation with a single '='.")
    if len(sides) == 2 and args.operation != "solve":
        raise ToolError("An equation ('=') only makes sense with operation 'solve'.")
    solutions: list[str] | None = None
    if args.operation == "solve":
        expr = _parse(sides[0]) - _parse(sides[1]) if len(sides) == 2 else _parse(text)
        variable = _variable(expr, args.variable)
        found = sympy.solve(expr, variable)
        solutions = [str(s) for s in found]
        result = sympy.FiniteSet(*found) if found else sympy.EmptySet
        return MathEvalResult(
            operation="solve",
            result=str(found),
            latex=sympy.latex(result),
            solutions=solutions,
        )
    expr = _parse(text)
    if args.operation == "simplify":
        value = sympy.simplify(expr)
    elif args.operation == "expand":
        value = sympy.expand(expr)
    elif args.operation == "factor":
        value = sympy.factor(expr)
    elif args.operation == "diff":
        value = sympy.diff(expr, _variable(expr, args.variable))
    elif args.operation == "integrate":
        value = sympy.integrate(expr, _variable(expr, args.variable))
    else:
        value = expr
    numeric = None
    if getattr(value, "is_number", False) and value.is_finite is not False:
        numeric = str(sympy.N(value, args.digits))
    return MathEvalResult(
        operation=args.operation, result=str(value), latex=sympy.latex(value), numeric=numeric
    )


class _Worker:
    """A child process that evaluates requests one at a time (JSON lines on stdin/stdout)."""

    def __init__(self) -> None:
        self.proc: asyncio.subprocess.Process | None = None
        self.lock = asyncio.Lock()

    async def _start(self) -> asyncio.subprocess.Process:
        root = str(Path(__file__).resolve().parents[2])
        # An allow-list, not a copy of our environment: the worker evaluates untrusted input,
        # so API keys and other secrets must not be there for it to leak.
        env = child_env(PYTHONPATH=python_path(root))
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tools.builtin.math_eval",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            env=env,
            limit=16 * 1024 * 1024,
        )

    async def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()

    async def compute(self, args: MathEvalArgs, timeout_s: float) -> MathEvalResult:
        async with self.lock:
            if self.proc is None or self.proc.returncode is not None:
                self.proc = await self._start()
            proc = self.proc
            assert proc.stdin is not None and proc.stdout is not None
            try:
                proc.stdin.write(args.model_dump_json().encode() + b"\n")
                await proc.stdin.drain()
                line = await asyncio.wait_for(proc.stdout.readline(), timeout_s)
            except TimeoutError:
                await self.stop()
                raise ToolError(
                    f"The computation took longer than {timeout_s:.0f} s and was stopped; "
                    "simplify the question or split it."
                ) from None
            except (ConnectionError, BrokenPipeError):
                line = b""
            except BaseException:
                await self.stop()
                raise
            if not line:
                await self.stop()
                raise ToolError("The math worker stopped (out of memory?); simplify the question.")
            reply = json.loads(line)
            if "error" in reply:
                raise ToolError(str(reply["error"]))
            return MathEvalResult.model_validate(reply["result"])


_WORKERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Worker] = (
    weakref.WeakKeyDictionary()
)


async def math_eval(args: MathEvalArgs, ctx: ToolContext) -> MathEvalResult:
    """Check the expression here, then compute it in the (killable) worker process."""
    for side in re.split(r"(?<![=<>!])=(?!=)", args.expression):
        try:
            _check(ast.parse(side.strip(), mode="eval"))
        except SyntaxError as exc:
            raise ToolError(
                f"Cannot parse {side.strip()!r}: {exc.msg}. Write e.g. '2*x**2 + 1'."
            ) from exc
    loop = asyncio.get_running_loop()
    worker = _WORKERS.get(loop)
    if worker is None:
        worker = _WORKERS[loop] = _Worker()
    return await worker.compute(args, TIMEOUT_S)


async def shutdown_worker() -> None:
    """Stop this event loop's math worker (it also exits by itself when its parent does)."""
    worker = _WORKERS.pop(asyncio.get_running_loop(), None)
    if worker is not None:
        await worker.stop()


def _serve() -> None:
    """The worker's loop: one JSON request per line in, one JSON reply per line out."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (WORKER_MEMORY_BYTES, WORKER_MEMORY_BYTES))
    for line in sys.stdin:
        try:
            result = _compute(MathEvalArgs.model_validate_json(line))
            reply: dict[str, Any] = {"result": result.model_dump(mode="json")}
        except ToolError as exc:
            reply = {"error": str(exc)}
        except (TypeError, ValueError, ArithmeticError, NotImplementedError) as exc:
            reply = {"error": f"SymPy could not do this: {type(exc).__name__}: {exc}"}
        except MemoryError:
            reply = {"error": "The computation needs too much memory; simplify the question."}
        except RecursionError:
            reply = {"error": "The expression is nested too deeply; simplify it."}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


SPEC: ToolSpec[MathEvalArgs, MathEvalResult] = ToolSpec(
    name="math_eval",
    version="1.0.0",
    description=(
        "Exact mathematics with SymPy. operation 'evaluate' (default) gives the exact value and "
        "a decimal one ('2^100', '1/3 + 1/6', 'sqrt(8)', 'sin(pi/6)'); 'simplify', 'expand', "
        "'factor'; 'solve' an equation ('x**2 = 4') or expression = 0; 'diff' and 'integrate' "
        "with respect to `variable`. Use it instead of doing arithmetic in your head."
    ),
    args_model=MathEvalArgs,
    result_model=MathEvalResult,
    handler=math_eval,
    side_effect="read_only",
    approval="never",
    examples=(
        ToolExample(
            title="exact arithmetic",
            args=MathEvalArgs(expression="1/3 + 1/6"),
            result=MathEvalResult(
                operation="evaluate",
                result="1/2",
                latex="\\frac{1}{2}",
                numeric="0.500000000000000",
            ),
            expect=lambda r: r.result == "1/2",
        ),
        ToolExample(
            title="big integers stay exact",
            args=MathEvalArgs(expression="2^100"),
            expect=lambda r: r.result == str(2**100),
        ),
        ToolExample(
            title="solve an equation",
            args=MathEvalArgs(expression="x**2 = 4", operation="solve"),
            expect=lambda r: r.solutions == ["-2", "2"],
        ),
        ToolExample(
            title="differentiate",
            args=MathEvalArgs(expression="x**3 + sin(x)", operation="diff"),
            expect=lambda r: r.result == "3*x**2 + cos(x)",
        ),
    ),
)


if __name__ == "__main__":
    _serve()
