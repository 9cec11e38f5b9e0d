"""What a finished task writes into the memory graph, and what the coder reads back.

A task's test runs say which errors the code hit and which later version made each one go
away; that version's change is a fix worth remembering ("which fixes resolved this error
before?"). The functions here are synchronous and free of LangGraph: nodes call them through
`asyncio.to_thread`, tests call them directly.

An error counts as resolved by the first later run of *different* code that loads, no longer
shows the error, and passes every check that failed with it. A check that disappeared (e.g.
a team test the reviewer rejected) resolves nothing: the code was not fixed, the test was
dropped. Errors never resolved are reported but not written: a fix is the unit of memory.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from typing_extensions import ReadOnly, TypedDict

from memory.graph import MemoryGraph, error_signature

__all__ = [
    "CheckRecord",
    "RecordedTask",
    "RunRecord",
    "known_fixes",
    "record_task",
    "run_errors",
    "summaries_from_messages",
]

MAIN_FILE = "solution.py"
MODULE_LEVEL = "<module>"
_HINT_CHARS = 300
# tools/checks.py reports a crashing check as "CALL raised TYPE: MESSAGE"
# (a wrong value is "CALL returned VALUE, expected VALUE": leave those whole)
_RAISED = re.compile(
    r"^(?:(?! returned ).)*? raised (?P<exc>[A-Za-z_][\w.]*): ?(?P<msg>.*)$", re.DOTALL
)


class CheckRecord(TypedDict, total=False):
    """One check of a test run, as this module reads it (`graphs.state.CheckResult` fits).

    Read-only and partial on purpose: the team's richer records pass as they are, and so
    does a hand-written run in a test.
    """

    name: ReadOnly[str]
    passed: ReadOnly[bool]
    error: ReadOnly[str]


class RunRecord(TypedDict, total=False):
    """One test run, as this module reads it (`graphs.state.TestRun` fits)."""

    iteration: ReadOnly[int]
    code_hash: ReadOnly[str]
    error: ReadOnly[str]
    """Why the code did not load or run at all; empty when it did."""
    checks: ReadOnly[Sequence[CheckRecord]]


@dataclass(frozen=True)
class RecordedTask:
    """What `record_task` wrote (and what it could not attribute to a fix)."""

    file: str
    function: str
    fixes: tuple[tuple[str, str], ...]
    """(error signature, fix) pairs, in the order they happened."""
    unresolved: tuple[str, ...]
    """Signatures of errors still present at the task's last run."""
    libraries: tuple[str, ...]


@dataclass
class _Open:
    text: str
    checks: set[str] = field(default_factory=set)
    code_hashes: set[str] = field(default_factory=set)


def _error_text(error: str) -> str:
    """The part of an error worth matching across tasks: drop the check's call for a crash."""
    text = error.strip()
    found = _RAISED.match(text)
    if found is None:
        return text
    msg = found["msg"].strip()
    return f"{found['exc']}: {msg}" if msg else found["exc"]


def _errors_by_signature(run: RunRecord) -> dict[str, tuple[str, set[str]]]:
    """Signature -> (error text, names of the checks that failed with it) for one run."""
    out: dict[str, tuple[str, set[str]]] = {}
    run_error = str(run.get("error") or "").strip()
    if run_error:
        out[error_signature(run_error)] = (run_error, set())
    for check in run.get("checks") or []:
        raw = str(check.get("error") or "")
        if check.get("passed") or not raw.strip():
            continue
        text = _error_text(raw)
        text_checks = out.setdefault(error_signature(text), (text, set()))
        text_checks[1].add(str(check.get("name", "")))
    return out


def run_errors(run: RunRecord) -> list[str]:
    """The distinct errors of one test run (a `TestRun`), as texts to record or look up."""
    return [text for text, _ in _errors_by_signature(run).values()]


def summaries_from_messages(messages: Iterable[object]) -> dict[int, str]:
    """Iteration -> the coder's summary, from the state's narrative (`coder: <summary>`).

    Each coder message carries its attempt number (`additional_kwargs["iteration"]`), since
    working memory folds old messages away; without it, the n-th message counts as attempt n.
    """
    out: dict[int, str] = {}
    iteration = 0
    for message in messages:
        if getattr(message, "name", None) != "coder":
            continue
        iteration += 1
        tagged = (getattr(message, "additional_kwargs", None) or {}).get("iteration")
        if isinstance(tagged, int):
            iteration = tagged
        text = str(getattr(message, "content", "")).removeprefix("coder:").strip()
        if text and not text.startswith("no valid edit"):
            out[iteration] = text
    return out


def _parse(source: str) -> ast.Module | None:
    try:
        return ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def _top_level_names(source: str) -> list[str]:
    tree = _parse(source)
    if tree is None:
        return []
    return [
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    ]


def _locate(files: Mapping[str, str], entry_point: str | None, goal: str) -> tuple[str, str]:
    """The file and function the task was about."""
    python = sorted((p for p in files if p.endswith(".py")), key=lambda p: (p != MAIN_FILE, p))
    if entry_point:
        for path in python:
            if entry_point in _top_level_names(files[path]):
                return path, entry_point
        return (python[0] if python else MAIN_FILE), entry_point
    if not python:
        return MAIN_FILE, MODULE_LEVEL
    names = _top_level_names(files[python[0]])
    named = [n for n in names if re.search(rf"\b{re.escape(n)}\b", goal)]
    return python[0], (named or names or [MODULE_LEVEL])[0]


def _libraries(files: Mapping[str, str]) -> dict[str, list[str]]:
    """File -> the top-level packages it imports (local modules and __future__ left out)."""
    local = {p.removesuffix(".py").replace("/", ".").split(".")[0] for p in files}
    out: dict[str, list[str]] = {}
    for path, source in sorted(files.items()):
        tree = _parse(source) if path.endswith(".py") else None
        if tree is None:
            continue
        found: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module.split(".")[0])
        found -= local | {"__future__"}
        if found:
            out[path] = sorted(found)
    return out


def _resolutions(
    test_runs: Sequence[RunRecord],
) -> tuple[list[tuple[str, str, int, str]], list[str]]:
    """([(signature, error text, resolving iteration, its code hash)], unresolved signatures)."""
    runs = sorted(test_runs, key=lambda r: int(r.get("iteration", 0)))  # stable: keeps order
    opened: dict[str, _Open] = {}
    resolved: list[tuple[str, str, int, str]] = []
    for run in runs:
        errors = _errors_by_signature(run)
        code = str(run.get("code_hash", ""))
        passed = {str(c.get("name", "")) for c in run.get("checks") or [] if c.get("passed")}
        if not run.get("error"):
            for sig, pending in list(opened.items()):
                if sig in errors or code in pending.code_hashes:
                    continue  # still there, or the same code run with other checks
                if not pending.checks <= passed:
                    continue  # a check that failed with it is missing or failing
                resolved.append((sig, pending.text, int(run.get("iteration", 0)), code))
                del opened[sig]
        for sig, (text, checks) in errors.items():
            pending = opened.setdefault(sig, _Open(text))
            pending.checks |= checks
            pending.code_hashes.add(code)
    return resolved, list(opened)


def record_task(
    graph: MemoryGraph,
    *,
    tenant: str,
    task_id: str,
    goal: str,
    entry_point: str | None,
    test_runs: Sequence[RunRecord],
    delivered_files: Mapping[str, str],
    summaries: Mapping[int, str] | None = None,
    at: int | None = None,
) -> RecordedTask:
    """Write a task's fixes (error, fix, function, file) and imported libraries.

    `summaries` maps an iteration to the coder's description of that change (see
    `summaries_from_messages`); without one the fix reads "changed code <hash>". Safe to call
    again for the same task (a replayed node): MERGE keys and per-task counters make the second
    call change nothing but the last-seen times.
    """
    g = graph.in_namespace(tenant)
    file, function = _locate(delivered_files, entry_point, goal)
    resolved, unresolved = _resolutions(test_runs)
    fixes: list[tuple[str, str]] = []
    for _sig, text, iteration, code in resolved:
        fix = (summaries or {}).get(iteration, "").strip() or f"changed code {code}"
        sig = g.record_fix(text, fix, function, file=file, task_id=task_id, at=at)
        fixes.append((sig, fix))
    libraries = _libraries(delivered_files)
    for path, names in libraries.items():
        for name in names:
            g.add_library(path, name, subject_label="File", task_id=task_id, at=at)
    return RecordedTask(
        file=file,
        function=function,
        fixes=tuple(fixes),
        unresolved=tuple(unresolved),
        libraries=tuple(sorted({n for names in libraries.values() for n in names})),
    )


def known_fixes(
    graph: MemoryGraph, error: str | Sequence[str], tenant: str, limit: int = 3
) -> list[str]:
    """Prompt lines: "last time `<error>` was resolved by: <fix>", most proven fixes first.

    Takes one error or several (e.g. `run_errors(latest_run)`); an unknown error falls back to
    fixes for the same exception type, and the line then names the error that fix resolved.
    """
    if limit <= 0:
        return []
    g = graph.in_namespace(tenant)
    texts = [error] if isinstance(error, str) else list(error)
    lines: list[str] = []
    seen: set[tuple[str, str]] = set()
    for text in texts:
        text = _error_text(text)
        if not text:
            continue
        for fix in g.fixes_for(text, limit=limit):
            if (fix.error, fix.fix) in seen:
                continue
            seen.add((fix.error, fix.fix))
            body = " ".join(fix.fix.split())
            if len(body) > _HINT_CHARS:
                body = body[: _HINT_CHARS - 3] + "..."
            lines.append(f"last time `{fix.error}` was resolved by: {body}")
            if len(lines) >= limit:
                return lines
    return lines
