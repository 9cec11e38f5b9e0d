"""What `strategos` prints: reports, approval requests, task status, and one-line errors.

Errors are one line on stderr unless `--debug` is given: a user needs what went wrong and what to
do next, not 240 lines of LangGraph internals; `--debug` brings the traceback back.
"""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Mapping
from typing import Any

import typer
from langgraph.types import StateSnapshot
from pydantic import ValidationError
from rich.console import Console
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from nodes.inbox import request_of
from service.exit_codes import ExitCode

console = Console()
err = Console(stderr=True)


class _Flags:
    """Process-wide CLI flags set by the top-level callback."""

    debug = False


flags = _Flags()


def quiet_libraries(debug: bool) -> None:
    """Library log lines only with `--debug`: the CLI's own line says what failed.

    psycopg's pool logs every failed reconnection (a dozen lines while the database is down);
    with `--debug`, all libraries log at INFO, LangGraph's node retries included.
    """
    if debug:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        return
    logging.getLogger("psycopg.pool").setLevel(logging.CRITICAL)


def error_line(message: str, *, style: str = "red", label: str = "error") -> None:
    """Print `label: message` as one stderr line (no wrapping, no markup in the message)."""
    err.print(Text.assemble((f"{label}: ", style), message), soft_wrap=True, highlight=False)


def fail(message: str, code: ExitCode = ExitCode.ERROR) -> typer.Exit:
    """Print one error line; the `typer.Exit` to raise with the given status."""
    error_line(message)
    return typer.Exit(code=int(code))


def describe(exc: BaseException) -> str:
    """An exception as one short line: its type and the first line of its message."""
    if isinstance(exc, ValidationError):  # e.g. a bad STRATEGOS_* variable: name the fields
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_url=False)
        )
        return f"invalid {exc.title}: {problems}"[:300]
    lines = str(exc).strip().splitlines()
    first = lines[0].strip() if lines else ""
    text = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def unexpected(exc: BaseException, hint: str = "") -> typer.Exit:
    """An error nobody planned for: one line (and the traceback with `--debug`)."""
    if flags.debug:
        err.print("".join(traceback.format_exception(exc)), highlight=False, markup=False)
    suffix = "" if flags.debug else " (`strategos --debug ...` shows the traceback)"
    return fail(describe(exc) + (f"; {hint}" if hint else "") + suffix)


def warn(message: str) -> None:
    """One warning line on stderr."""
    error_line(message, style="yellow", label="warning")


def show_request(request: Any) -> None:
    """Render an approval request (the team's delivery or a tool call the policy holds)."""
    if not isinstance(request, dict):
        console.print(f"[red]approval needed:[/] {request}")
        return
    console.rule("[bold red]approval needed")
    if request.get("kind") == "tool_approval":
        console.print(f"tool: {request.get('tool')} {request.get('version')}")
        console.print(f"arguments: {json.dumps(request.get('args'), indent=2)[:2000]}")
        console.print(f"why: {request.get('reason')}")
        return
    console.print(f"action: {request.get('action')} → {request.get('destination')}")
    console.print(f"files: {', '.join(request.get('files', []))}")
    for path, text in (request.get("contents") or {}).items():
        console.rule(path, style="dim")
        console.print(Syntax(str(text), "python" if path.endswith(".py") else "text"))
    console.rule(style="dim")
    console.print(f"tests: {request.get('tests')}")
    for failure in request.get("failing") or []:
        console.print(Text.assemble(("  ✗ ", "red"), str(failure)))  # no markup from the code
    for flag in request.get("flags") or []:
        console.print(Text.assemble(("  ⚑ ", "bold red"), str(flag)))
    console.print(f"why now: {request.get('summary')}")


def print_paused(task_id: str) -> None:
    """The exact commands that answer a paused task."""
    console.print(f"\n[bold]Task {task_id} is paused, waiting for approval.[/]")
    console.print(f"  approve: strategos approve {task_id}")
    console.print(f"  reject:  strategos approve {task_id} --reject --comment 'what to change'")


def print_report(
    report: Mapping[str, Any],
    wall_s: float,
    task_id: str,
    by_role: Mapping[str, int] | None = None,
) -> None:
    """The final report as a table (`by_role`: tokens each role spent, from the budget ledger)."""
    table = Table(title=f"task {task_id}: {report.get('status', 'unknown')}", box=None)
    table.add_column("", style="bold")
    table.add_column("")
    tests = report.get("tests") or {}
    rows = {
        "files delivered": ", ".join(report.get("files") or []) or "none",
        "destination": report.get("destination") or "-",
        "goal examples": f"{tests.get('spec_passed', 0)}/{tests.get('spec_total', 0)} passed",
        "team tests": f"{tests.get('team_passed', 0)}/{tests.get('team_total', 0)} passed",
        "iterations": str(report.get("iterations", 0)),
        "steps": str(report.get("steps", 0)),
        "model calls": str(report.get("model_calls", 0)),
        "tokens (prompt + completion)": (
            f"{report.get('prompt_tokens', 0)} + {report.get('completion_tokens', 0)}"
        ),
        "cost": f"${float(report.get('cost_usd') or 0.0):.6f}",
        "wall time (this run)": f"{wall_s:.1f} s",
    }
    if by_role:
        rows["tokens by role"] = ", ".join(
            f"{role} {spent}" for role, spent in sorted(by_role.items(), key=lambda kv: -kv[1])
        )
    if report.get("stop_reason"):
        rows["stopped because"] = str(report["stop_reason"])
    if report.get("delivery_error"):
        rows["delivery error"] = str(report["delivery_error"])
    for key, value in rows.items():
        table.add_row(key, value)
    console.print(table)


def status_of(snapshot: StateSnapshot) -> str:
    """A task's status in words, from its latest checkpoint and the writes saved after it."""
    values = snapshot.values or {}
    if snapshot.interrupts:
        return "waiting for approval"
    if values.get("report"):
        return "finished"
    if not values:
        return "not started"
    if snapshot.next:
        return f"interrupted before {', '.join(snapshot.next)}"
    done = sorted(
        {t.name for t in snapshot.tasks if t.result is not None and not t.name.startswith("__")}
    )
    return f"interrupted after {', '.join(done) or 'its last step'} (its results are saved)"


def print_status(snapshot: StateSnapshot, task_id: str, as_json: bool) -> None:
    """`strategos show`: status, latest messages and the report."""
    values = snapshot.values or {}
    status = status_of(snapshot)
    if as_json:
        summary = {
            "task_id": task_id,
            "status": status,
            "report": values.get("report"),
            "iteration": values.get("iteration"),
            "steps": values.get("steps"),
            "usage": values.get("usage"),
            "pending_approval": (
                request_of(snapshot.interrupts[0].value) if snapshot.interrupts else None
            ),
        }
        console.print_json(json.dumps(summary, default=str))
        return
    console.print(f"[bold]task {task_id}[/] — {status}")
    for message in values.get("messages", [])[-12:]:
        console.print(f"  {message.content}", highlight=False)
    if values.get("report"):
        print_report(values["report"], 0.0, task_id)
