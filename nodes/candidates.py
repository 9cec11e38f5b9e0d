"""Candidate solutions from model replies, and the tester's proposed inputs (pure, no I/O).

The coder answers with a fenced ```python block (code inside JSON costs a small model accuracy).
A reply is turned into a `Candidate`: the code of the block that defines the entry point, with
stray prose and example scaffolding (prints, asserts, a `__main__` block) removed, since those
run at import and would make a correct function fail to load. Code that does not parse is
`Rejected` with the SyntaxError text, ready for a repair prompt. Identical programs (same syntax
tree once comments and docstrings are gone) share an id: they are run once, and `Pool.votes`
keeps how many replies produced each, because agreement between samples is evidence.
"""

from __future__ import annotations

import ast
import hashlib
import re
import textwrap
import traceback
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, Field
from typing_extensions import TypedDict

from tools.builtin.run_candidates import RunCandidatesArgs
from tools.checks import Check, free_names, parse_quietly

__all__ = [
    "MAX_CANDIDATES",
    "MAX_INPUTS",
    "Candidate",
    "Origin",
    "Pool",
    "ProposedInputs",
    "Rejected",
    "accept_inputs",
    "candidate_id",
    "collect",
    "extract_code",
    "make_candidate",
    "normalized",
    "run_args",
    "strip_scaffolding",
    "syntax_error",
]

Origin = Literal["greedy", "sample", "repair"]
SOLUTION = "solution.py"
MAX_CANDIDATES = 8
"""run_candidates' bound (nodes may import only a tool's Args/Result models; a test ties them)."""
MAX_INPUTS = 20
"""run_candidates' bound on proposed inputs."""
_FENCE = re.compile(
    r"^[ \t]*(?P<fence>`{3,}|~{3,})[ \t]*(?P<lang>[\w+#.-]*)[^\n]*\n(?P<body>.*?)"
    r"(?:^[ \t]*(?P=fence)[ \t]*$|\Z)",
    re.DOTALL | re.MULTILINE,
)
_PYTHON_TAGS = frozenset({"", "python", "python3", "py", "py3"})
_CODE_START = re.compile(r"^(?:def |async def |class |import |from |@)")
_SCAFFOLD_CALLS = frozenset({"print", "testmod", "main"})


class Candidate(TypedDict):
    """A runnable candidate; `id` is a short hash of its normalized code."""

    id: str
    code: str
    origin: Origin


@dataclass(frozen=True)
class Rejected:
    """A reply that gave no usable code; `reason` is shown verbatim in a repair prompt."""

    origin: Origin
    reason: str
    code: str = ""


@dataclass(frozen=True)
class Pool:
    """Distinct candidates in order of first appearance, with how many replies gave each."""

    candidates: tuple[Candidate, ...] = ()
    votes: Mapping[str, int] = field(default_factory=dict)
    rejected: tuple[Rejected, ...] = ()


def syntax_error(code: str) -> str | None:
    """The SyntaxError text of `code` as Python prints it for solution.py, or None if it parses."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            ast.parse(code, filename=SOLUTION)
    except SyntaxError as exc:
        return "".join(traceback.format_exception_only(type(exc), exc)).strip()
    except ValueError as exc:  # a NUL byte in the source
        return f"ValueError: {exc}"
    return None


def _parses(code: str) -> bool:
    return syntax_error(code) is None


def _salvage(text: str) -> str:
    """The code in `text` once leading and trailing prose lines are cut ('' if none parses).

    Prose before the code is skipped up to the first line that starts like Python code; prose
    after it is cut at the line the parser stops at, a few times at most.
    """
    if _parses(text):
        return text
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if _CODE_START.match(line)]
    for start in starts[:3]:
        chunk = lines[start:]
        for _ in range(6):
            code = "\n".join(chunk)
            try:
                parse_quietly(code)
            except SyntaxError as exc:
                cut = (exc.lineno or 1) - 1
                if cut <= 0 or cut >= len(chunk):
                    break
                chunk = chunk[:cut]
                continue
            except ValueError:
                break
            return code.strip("\n")
    return ""


def _defines(tree: ast.Module, name: str) -> bool:
    """Whether the module binds `name` at top level (def, class, assignment or import)."""
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            if node.name == name:
                return True
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                return True
        elif isinstance(node, ast.Import | ast.ImportFrom):
            if any((alias.asname or alias.name) == name for alias in node.names):
                return True
    return False


def _has_def(code: str, entry_point: str | None) -> bool:
    try:
        tree = parse_quietly(code)
    except (SyntaxError, ValueError):
        return False
    assert isinstance(tree, ast.Module)
    if entry_point:
        return _defines(tree, entry_point)
    return any(isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) for n in tree.body)


def _blocks(reply: str) -> list[str]:
    """The fenced blocks' bodies, Python-tagged ones only when there are any."""
    found = [(m["lang"].lower(), m["body"]) for m in _FENCE.finditer(reply)]
    python = [body for lang, body in found if lang in _PYTHON_TAGS]
    return [textwrap.dedent(body).strip("\n") for body in (python or [b for _, b in found])]


def extract_code(reply: str, entry_point: str | None = None) -> str:
    """The Python code a reply answers with ('' when there is none).

    Several blocks: the longest that parses and defines the entry point, else the longest that
    parses, else the longest (so its SyntaxError can be reported). No fence: the whole reply if
    it parses, else the code found in it once prose is cut.
    """
    blocks = _blocks(reply)
    if not blocks:
        text = textwrap.dedent(reply).strip("\n")
        return text if _parses(text) else _salvage(text)
    salvaged = [code for code in map(_salvage, blocks) if code.strip()]
    defining = [code for code in salvaged if _has_def(code, entry_point)]
    chosen = defining or salvaged or blocks
    return max(chosen, key=len)


def _is_scaffolding(node: ast.stmt, entry_point: str | None) -> bool:
    """Top-level statements that only demonstrate or test the code (they run at import)."""
    if isinstance(node, ast.Assert):
        return True
    if isinstance(node, ast.If):
        test = node.test
        return (
            isinstance(test, ast.Compare)
            and isinstance(test.left, ast.Name)
            and test.left.id == "__name__"
        )
    value = node.value if isinstance(node, ast.Expr | ast.Assign) else None
    if not isinstance(value, ast.Call):
        return False
    func = value.func
    name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
    if isinstance(node, ast.Assign):
        return bool(entry_point) and name == entry_point
    return name in _SCAFFOLD_CALLS or (bool(entry_point) and name == entry_point)


def strip_scaffolding(code: str, entry_point: str | None = None) -> str:
    """`code` without top-level example calls, prints, asserts and `if __name__ == ...` blocks."""
    try:
        tree = parse_quietly(code)
    except (SyntaxError, ValueError):
        return code
    assert isinstance(tree, ast.Module)
    drop: set[int] = set()
    for node in tree.body:
        if _is_scaffolding(node, entry_point) and node.end_lineno is not None:
            drop.update(range(node.lineno, node.end_lineno + 1))
    if not drop:
        return code
    kept = [line for n, line in enumerate(code.splitlines(), start=1) if n not in drop]
    stripped = "\n".join(kept)
    return stripped if _parses(stripped) and stripped.strip() else code


def _tidy(code: str) -> str:
    lines = [line.rstrip() for line in code.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    return "\n".join(lines).strip("\n") + "\n"


def _drop_docstrings(tree: ast.AST) -> None:
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            body = node.body
            first = body[0] if body else None
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                node.body = body[1:] or [ast.Pass()]


def normalized(code: str) -> str:
    """The form ids hash: the syntax tree without comments, docstrings and layout."""
    try:
        tree = parse_quietly(code)
    except (SyntaxError, ValueError):
        return _tidy(code)
    _drop_docstrings(tree)
    return ast.unparse(tree)


def candidate_id(code: str) -> str:
    """12 hex digits of the sha256 of the normalized code."""
    return hashlib.sha256(normalized(code).encode()).hexdigest()[:12]


def make_candidate(
    reply: str, origin: Origin, entry_point: str | None = None
) -> Candidate | Rejected:
    """The candidate a reply answers with, or why it has none."""
    code = extract_code(reply, entry_point)
    if not code.strip():
        return Rejected(origin, "the reply has no Python code; answer in one ```python block")
    if error := syntax_error(code):
        return Rejected(origin, error, _tidy(code))
    code = _tidy(strip_scaffolding(code, entry_point))
    if entry_point and not _has_def(code, entry_point):
        return Rejected(origin, f"the code does not define `{entry_point}`", code)
    return Candidate(id=candidate_id(code), code=code, origin=origin)


def collect(
    replies: Iterable[tuple[str, Origin]],
    entry_point: str | None = None,
    limit: int = MAX_CANDIDATES,
) -> Pool:
    """Distinct candidates of several replies (at most `limit`), their votes and the rejects.

    A duplicate of a greedy answer makes the kept candidate greedy (the tie-break favours it).
    """
    kept: dict[str, Candidate] = {}
    votes: dict[str, int] = {}
    rejected: list[Rejected] = []
    for reply, origin in replies:
        made = make_candidate(reply, origin, entry_point)
        if isinstance(made, Rejected):
            rejected.append(made)
        elif made["id"] in kept:
            votes[made["id"]] += 1
            if origin == "greedy":
                kept[made["id"]] = Candidate(
                    id=made["id"], code=kept[made["id"]]["code"], origin=origin
                )
        elif len(kept) < limit:
            kept[made["id"]] = made
            votes[made["id"]] = 1
        else:
            rejected.append(Rejected(origin, f"over the limit of {limit} candidates", made["code"]))
    return Pool(tuple(kept.values()), votes, tuple(rejected))


class ProposedInputs(BaseModel):
    """The tester's answer (tester@3): calls of the function, no expected values."""

    calls: list[str] = Field(default_factory=list, max_length=2 * MAX_INPUTS)


def _calls(tree: ast.AST, entry_point: str) -> bool:
    """Whether an expression is a direct call of `entry_point`."""
    if not isinstance(tree, ast.Expression) or not isinstance(tree.body, ast.Call):
        return False
    func = tree.body.func
    return isinstance(func, ast.Name) and func.id == entry_point


def accept_inputs(
    calls: Iterable[str],
    entry_point: str,
    limit: int = MAX_INPUTS,
    known: Iterable[str] = (),
) -> list[str]:
    """The usable proposed inputs: calls of `entry_point` with literal arguments, deduplicated.

    Calls equal (as syntax trees) to a `known` one, e.g. a spec check's call, add nothing.
    """
    seen = set()
    for text in known:
        try:
            seen.add(ast.dump(parse_quietly(text.strip(), mode="eval")))
        except (SyntaxError, ValueError):
            continue
    accepted: list[str] = []
    for raw in calls:
        text = raw.strip()
        if len(accepted) >= limit or not text or len(text) > 1000:
            continue
        try:
            tree = parse_quietly(text, mode="eval")
        except (SyntaxError, ValueError):
            continue
        if not _calls(tree, entry_point) or free_names(text, entry_point):
            continue
        if (key := ast.dump(tree)) not in seen:
            seen.add(key)
            accepted.append(text)
    return accepted


def run_args(
    candidates: Iterable[Candidate],
    checks: Iterable[Check] = (),
    inputs: Iterable[str] = (),
    module: str = SOLUTION,
    per_call_s: float = 2.0,
) -> RunCandidatesArgs:
    """The run_candidates arguments for a pool: each candidate's code as `module`."""
    return RunCandidatesArgs.model_validate(
        {
            "candidates": [
                {
                    "id": c["id"],
                    "origin": c["origin"],
                    "files": [{"path": module, "content": c["code"]}],
                }
                for c in candidates
            ],
            "checks": [{"call": c.call, "expected": c.expected} for c in checks],
            "inputs": list(inputs),
            "module": module,
            "per_call_s": per_call_s,
        }
    )
