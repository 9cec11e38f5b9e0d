"""`strategos`: run, resume, approve and inspect coding tasks, and run the benchmark."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from langgraph.types import Command, StreamMode
from rich.console import Console
from rich.prompt import Confirm, Prompt
from rich.table import Table

from graphs.team import compile_team
from service import deps, tasks
from service.live import LiveView
from service.models import chat_model
from service.persistence import checkpointer
from service.settings import Settings, get_settings

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)


@app.callback()
def _main() -> None:
    """Turn SIGTERM into a normal exit, so the local model server is stopped with us."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))


console = Console()
err = Console(stderr=True)

STREAM_MODES: list[StreamMode] = ["updates", "custom"]
EXIT_PAUSED = 10
"""Exit status when a task waits for a human approval (no terminal to ask on)."""

ApproveOpt = Annotated[
    str, typer.Option("--approve", help="Sensitive steps: ask (default), auto or deny.")
]


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/] {message}")
    return typer.Exit(code=1)


def _approve_mode(value: str) -> Literal["ask", "auto", "deny"]:
    if value not in ("ask", "auto", "deny"):
        raise _fail(f"--approve must be ask, auto or deny, not {value!r}")
    return value  # type: ignore[return-value]


async def _drive(
    settings: Settings, record: tasks.TaskRecord, payload: Any, *, interactive: bool
) -> int:
    """Stream the task until it ends or pauses; handle approvals on a terminal."""
    ctx = record.context(settings)
    ctx.model = chat_model(settings)
    config = record.config()
    started = time.monotonic()
    async with checkpointer(settings) as saver:
        graph = compile_team(saver)
        snapshot = await graph.aget_state(config)
        values = snapshot.values or {}
        usage = values.get("usage") or {}
        view = LiveView(
            console,
            steps=int(values.get("steps", 0)),
            tokens=int(usage.get("prompt_tokens", 0)) + int(usage.get("completion_tokens", 0)),
        )
        while True:
            with view:
                async for mode, chunk in graph.astream(
                    payload,
                    config,
                    context=ctx,
                    stream_mode=["updates", "custom"],
                ):
                    view.handle(mode, chunk)
            snapshot = await graph.aget_state(config)
            if not snapshot.interrupts:
                break
            request = snapshot.interrupts[0].value
            _show_request(request)
            if not interactive:
                _print_paused(record.task_id)
                return EXIT_PAUSED
            approved = Confirm.ask("Approve this delivery?", console=console)
            comment = "" if approved else Prompt.ask("What should change?", console=console)
            payload = Command(resume={"approved": approved, "comment": comment})
    _print_report(snapshot.values.get("report") or {}, time.monotonic() - started, record)
    return 0


def _show_request(request: Any) -> None:
    if not isinstance(request, dict):
        console.print(f"[red]approval needed:[/] {request}")
        return
    console.rule("[bold red]approval needed")
    if request.get("kind") == "tool_approval":
        # A tool call the gateway's policy holds for a human (nodes.approval.interrupt_approver).
        console.print(f"tool: {request.get('tool')} {request.get('version')}")
        console.print(f"arguments: {json.dumps(request.get('args'), indent=2)[:2000]}")
        console.print(f"why: {request.get('reason')}")
        return
    console.print(f"action: {request.get('action')} → {request.get('destination')}")
    console.print(f"files: {', '.join(request.get('files', []))}")
    console.print(f"tests: {request.get('tests')}")
    console.print(f"why now: {request.get('summary')}")


def _print_paused(task_id: str) -> None:
    console.print(f"\n[bold]Task {task_id} is paused, waiting for approval.[/]")
    console.print(f"  approve: strategos approve {task_id}")
    console.print(f"  reject:  strategos approve {task_id} --reject --comment 'what to change'")


def _print_report(report: dict[str, Any], wall_s: float, record: tasks.TaskRecord) -> None:
    table = Table(title=f"task {record.task_id}: {report.get('status', 'unknown')}", box=None)
    table.add_column("", style="bold")
    table.add_column("")
    tests = report.get("tests", {})
    rows = {
        "files delivered": ", ".join(report.get("files", [])) or "none",
        "destination": report.get("destination") or "-",
        "goal examples": f"{tests.get('spec_passed', 0)}/{tests.get('spec_total', 0)} passed",
        "team tests": f"{tests.get('team_passed', 0)}/{tests.get('team_total', 0)} passed",
        "iterations": str(report.get("iterations", 0)),
        "steps": str(report.get("steps", 0)),
        "model calls": str(report.get("model_calls", 0)),
        "tokens (prompt + completion)": (
            f"{report.get('prompt_tokens', 0)} + {report.get('completion_tokens', 0)}"
        ),
        "wall time (this run)": f"{wall_s:.1f} s",
    }
    if report.get("stop_reason"):
        rows["stopped because"] = str(report["stop_reason"])
    for key, value in rows.items():
        table.add_row(key, value)
    console.print(table)


async def _closing(coro: Any) -> Any:
    try:
        return await coro
    finally:
        await deps.aclose()


def _run_async(coro: Any) -> int:
    try:
        return int(asyncio.run(_closing(coro)))
    except tasks.TaskNotFoundError as exc:
        raise _fail(str(exc)) from exc
    except KeyboardInterrupt:
        err.print("[yellow]interrupted; continue with `strategos resume TASK_ID`[/]")
        return 130


@app.command()
def run(
    goal: Annotated[str, typer.Argument(help="The programming goal, in words.")],
    out: Annotated[Path | None, typer.Option("--out", help="Where to deliver the files.")] = None,
    approve: ApproveOpt = "ask",
    entry_point: Annotated[str | None, typer.Option(help="Name of the function to write.")] = None,
    max_steps: Annotated[int | None, typer.Option(min=1, help="Agent step limit.")] = None,
    token_budget: Annotated[int | None, typer.Option(min=1, help="Token budget.")] = None,
    task_id: Annotated[str | None, typer.Option(help="Choose the task id.")] = None,
) -> None:
    """Start a task and stream the team's work until it is delivered or needs approval."""
    settings = get_settings()
    if not goal.strip():
        raise _fail("the goal is empty")
    task = task_id or tasks.new_task_id()
    try:
        record = tasks.TaskRecord(
            task_id=task,
            goal=goal,
            entry_point=entry_point,
            approve=_approve_mode(approve),
            out_dir=str((out or tasks.task_dir(settings, task) / "delivered").resolve()),
            max_steps=max_steps,
            token_budget=token_budget,
        )
    except ValueError as exc:
        raise _fail(str(exc)) from exc
    tasks.save(settings, record)
    console.print(f"[bold]task {record.task_id}[/]: {goal.strip().splitlines()[0][:100]}")
    payload: dict[str, Any] = {"goal": goal}
    if entry_point:
        payload["entry_point"] = entry_point
    interactive = record.approve == "ask" and sys.stdin.isatty()
    raise typer.Exit(_run_async(_drive(settings, record, payload, interactive=interactive)))


@app.command()
def resume(task_id: str) -> None:
    """Continue a task from its last checkpoint (after a crash or a kill)."""
    settings = get_settings()
    record = _load(settings, task_id)
    interactive = record.approve == "ask" and sys.stdin.isatty()
    raise typer.Exit(_run_async(_resume(settings, record, interactive)))


async def _resume(settings: Settings, record: tasks.TaskRecord, interactive: bool) -> int:
    async with checkpointer(settings) as saver:
        snapshot = await compile_team(saver).aget_state(record.config())
    if not snapshot.values:
        raise tasks.TaskNotFoundError(f"task {record.task_id} has no checkpoint to resume")
    if snapshot.interrupts:
        _show_request(snapshot.interrupts[0].value)
        if not interactive:
            _print_paused(record.task_id)
            return EXIT_PAUSED
        approved = Confirm.ask("Approve this delivery?", console=console)
        comment = "" if approved else Prompt.ask("What should change?", console=console)
        payload: Any = Command(resume={"approved": approved, "comment": comment})
    elif not snapshot.next:
        _print_report(snapshot.values.get("report") or {}, 0.0, record)
        return 0
    else:
        console.print(f"resuming task {record.task_id} at {', '.join(snapshot.next)}")
        payload = None
    return await _drive(settings, record, payload, interactive=interactive)


@app.command("approve")
def approve_cmd(
    task_id: str,
    reject: Annotated[bool, typer.Option("--reject", help="Reject instead of approving.")] = False,
    comment: Annotated[str, typer.Option(help="What the team should change.")] = "",
) -> None:
    """Answer a paused task's approval request, then let the team continue."""
    settings = get_settings()
    record = _load(settings, task_id)
    raise typer.Exit(_run_async(_answer(settings, record, not reject, comment)))


async def _answer(settings: Settings, record: tasks.TaskRecord, ok: bool, comment: str) -> int:
    async with checkpointer(settings) as saver:
        snapshot = await compile_team(saver).aget_state(record.config())
    if not snapshot.interrupts:
        raise _fail(f"task {record.task_id} is not waiting for approval")
    payload: Command[Any] = Command(resume={"approved": ok, "comment": comment})
    return await _drive(settings, record, payload, interactive=sys.stdin.isatty())


@app.command()
def show(task_id: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Show a task's status, latest messages and report."""
    settings = get_settings()
    record = _load(settings, task_id)
    raise typer.Exit(_run_async(_show(settings, record, as_json)))


async def _show(settings: Settings, record: tasks.TaskRecord, as_json: bool) -> int:
    async with checkpointer(settings) as saver:
        snapshot = await compile_team(saver).aget_state(record.config())
    values = snapshot.values or {}
    status = (
        "waiting for approval"
        if snapshot.interrupts
        else "finished"
        if values.get("report")
        else "not started"
        if not values
        else f"interrupted before {', '.join(snapshot.next)}"
    )
    if as_json:
        summary = {
            "task_id": record.task_id,
            "status": status,
            "report": values.get("report"),
            "iteration": values.get("iteration"),
            "steps": values.get("steps"),
            "usage": values.get("usage"),
        }
        console.print_json(json.dumps(summary))
        return 0
    console.print(f"[bold]task {record.task_id}[/] — {status}")
    for message in values.get("messages", [])[-12:]:
        console.print(f"  {message.content}", highlight=False)
    if values.get("report"):
        _print_report(values["report"], 0.0, record)
    return 0


def _load(settings: Settings, task_id: str) -> tasks.TaskRecord:
    try:
        return tasks.load(settings, task_id)
    except tasks.TaskNotFoundError as exc:
        raise _fail(str(exc)) from exc


@app.command()
def bench(
    dataset: Annotated[str, typer.Option(help="'humaneval' or a JSONL file in its format.")],
    limit: Annotated[int | None, typer.Option(min=1)] = None,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    mode: Annotated[list[str] | None, typer.Option(help="team and/or single-shot.")] = None,
    out: Annotated[Path, typer.Option(help="Where to write the JSON results.")] = Path(
        "bench-results.json"
    ),
) -> None:
    """Run coding tasks through the team and/or one plain request; score on hidden tests.

    Results are written after every task; running the same command again continues an
    interrupted run instead of starting over.
    """
    from eval.bench import run_benchmark

    modes = mode or ["team", "single-shot"]
    for item in modes:
        if item not in ("team", "single-shot"):
            raise _fail(f"--mode must be team or single-shot, not {item!r}")
    settings = get_settings()
    try:
        asyncio.run(
            run_benchmark(
                settings, dataset, modes, limit=limit, offset=offset, console=console, out=out
            )
        )
    except (ValueError, OSError) as exc:
        raise _fail(str(exc)) from exc
    console.print(f"results written to {out}")


@app.command()
def prepare() -> None:
    """Download and build the embedded model (weights and llama-server) into the cache."""
    from service.local_model import prepare as prepare_model

    paths = prepare_model(get_settings(), err)
    console.print(f"weights: {paths.weights}\nserver:  {paths.server}")


@app.command()
def serve(
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 2026,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    config: Annotated[
        Path | None, typer.Option(help="langgraph.json to serve (default: ./ or the repo's).")
    ] = None,
) -> None:
    """Serve the team graph with Aegra over PostgreSQL and Redis: one instance.

    Start more on other ports with the same STRATEGOS_DATABASE_URL, STRATEGOS_REDIS_URL and
    STRATEGOS_REDIS_PREFIX to scale out; they take runs from one queue and finish each other's
    runs after a crash. Unset, the database is postgresql://postgres@127.0.0.1:5432/strategos
    (created when missing) and Redis the local one.
    """
    from service.serve import serve as serve_aegra

    try:
        code = serve_aegra(host, port, config, get_settings())
    except (FileNotFoundError, ValueError, OSError) as exc:
        raise _fail(str(exc)) from exc
    raise typer.Exit(code)


# ---------------------------------------------------------------- dead-letter queue

dlq = typer.Typer(no_args_is_help=True, help="Failed runs of the task API: list, replay, resolve.")
app.add_typer(dlq, name="dlq")

ApiUrlOpt = Annotated[
    str,
    typer.Option(
        "--url", envvar="STRATEGOS_API_URL", help="Base URL of the task API (the server)."
    ),
]
ApiKeyOpt = Annotated[
    str | None,
    typer.Option(
        "--api-key", envvar="STRATEGOS_API_KEY", help="Tenant API key.", show_default=False
    ),
]
DEFAULT_API_URL = "http://127.0.0.1:2024"


def _api(method: str, url: str, api_key: str | None, path: str, body: Any = None) -> Any:
    """Call the task API; its `{"error": {code, message}}` becomes a one-line CLI error."""
    import httpx

    headers = {"x-api-key": api_key} if api_key else {}
    try:
        response = httpx.request(
            method, url.rstrip("/") + path, json=body, headers=headers, timeout=60.0
        )
    except httpx.HTTPError as exc:
        raise _fail(f"cannot reach the task API at {url}: {exc}") from exc
    if response.is_success:
        return response.json()
    try:
        detail = response.json()["error"]
        message = f"{detail['message']} ({detail['code']}, HTTP {response.status_code})"
    except (ValueError, KeyError, TypeError):
        message = f"HTTP {response.status_code}: {response.text[:200]}"
    raise _fail(message)


@dlq.command("list")
def dlq_list(
    url: ApiUrlOpt = DEFAULT_API_URL,
    api_key: ApiKeyOpt = None,
    status: Annotated[
        str | None, typer.Option(help="open, replayed or resolved (default: all).")
    ] = "open",
    limit: Annotated[int, typer.Option(min=1, max=100)] = 20,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw JSON page.")] = False,
) -> None:
    """List dead letters (open ones by default; `--status ''` for all)."""
    query = f"?limit={limit}&offset={offset}" + (f"&status={status}" if status else "")
    page = _api("GET", url, api_key, "/v1/dead-letters" + query)
    if as_json:
        console.print_json(json.dumps(page))
        return
    table = Table()
    for name in ("id", "task", "status", "attempts"):
        table.add_column(name, no_wrap=True, min_width=len(name))  # ids are to be copied whole
    for name in ("error", "created", "note"):
        table.add_column(name)
    for letter in page["dead_letters"]:
        table.add_row(
            letter["id"],
            letter["task_id"],
            letter["status"],
            str(letter["attempts"]),
            letter["error"].splitlines()[0][:60] if letter["error"] else "",
            letter["created_at"][:19],
            letter.get("note") or "",
        )
    console.print(table)
    if page.get("next_offset") is not None:
        console.print(f"more: --offset {page['next_offset']}")


@dlq.command("replay")
def dlq_replay(
    letter_id: Annotated[str, typer.Argument(help="The dead letter's id.")],
    url: ApiUrlOpt = DEFAULT_API_URL,
    api_key: ApiKeyOpt = None,
    input_json: Annotated[
        str | None,
        typer.Option("--input", help='Edited task input as JSON, e.g. \'{"goal": "..."}\'.'),
    ] = None,
) -> None:
    """Resume the failed task from its last checkpoint, optionally with edited input."""
    body: dict[str, Any] = {}
    if input_json is not None:
        try:
            body["input"] = json.loads(input_json)
        except json.JSONDecodeError as exc:
            raise _fail(f"--input is not valid JSON: {exc}") from exc
    result = _api("POST", url, api_key, f"/v1/dead-letters/{letter_id}/replay", body)
    console.print(f"replayed {result['dead_letter']['id']}: run {result['run_id']}")


@dlq.command("resolve")
def dlq_resolve(
    letter_id: Annotated[str, typer.Argument(help="The dead letter's id.")],
    url: ApiUrlOpt = DEFAULT_API_URL,
    api_key: ApiKeyOpt = None,
    note: Annotated[str, typer.Option(help="Why no replay is needed.")] = "",
) -> None:
    """Close a dead letter without replaying it."""
    letter = _api("POST", url, api_key, f"/v1/dead-letters/{letter_id}/resolve", {"note": note})
    console.print(f"resolved {letter['id']}")


if __name__ == "__main__":
    app()
