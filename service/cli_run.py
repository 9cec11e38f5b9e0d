"""Running tasks from a terminal: start, resume, answer, show; and the status each exits with.

What to do with a task is decided from its checkpoint (pending writes, `next`, interrupts, a
report in the state) and its record, never from `next` alone: a process killed after a node's
writes were saved but before the next checkpoint leaves an empty `next` on a task that is far
from finished.
"""

from __future__ import annotations

import asyncio
import sys
import time
import traceback
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, cast

import psycopg
import typer
from langgraph.errors import GraphRecursionError
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command, StateSnapshot, StreamMode
from rich.prompt import Confirm, Prompt

from graphs.state import TeamState
from nodes.deliver import build_report
from nodes.inbox import request_of
from service import deps, tasks
from service.budget_redis import role_spending
from service.cli_output import (
    console,
    err,
    fail,
    flags,
    print_paused,
    print_report,
    print_status,
    show_request,
    unexpected,
    warn,
)
from service.exit_codes import ExitCode, outcome_code
from service.live import LiveView
from service.llm.models import chat_model
from service.persistence import checkpointer
from service.repos import RepoCaps, RepoError, RepoSnapshot, ingest_dir, repo_input
from service.settings import Settings, get_settings
from service.team_deps import compile_named
from service.tracing import setup_tracing, shutdown_tracing

STREAM_MODES: list[StreamMode] = ["updates", "custom", "messages"]
"""Progress, the agents' events, and the model's tokens as they stream (`service.live`)."""
Graph = CompiledStateGraph[Any, Any, Any, Any]


def run_async(coro: Coroutine[Any, Any, ExitCode], settings: Settings, task_id: str) -> int:
    """Run one task coroutine, traced; every failure becomes one line and an exit status."""
    setup_tracing(settings)
    try:
        return int(asyncio.run(_closing(coro)))
    except typer.Exit:
        raise  # already reported
    except KeyboardInterrupt:
        warn(f"interrupted; continue with `strategos resume {task_id}`")
        return ExitCode.INTERRUPTED
    except Exception as exc:
        saved = tasks.find(settings, task_id) is not None
        hint = f"the task is saved: run `strategos resume {task_id}`" if saved else ""
        if _database_error(exc):
            if flags.debug:
                err.print("".join(traceback.format_exception(exc)), highlight=False, markup=False)
            lost = "database connection lost" if saved else "cannot reach the database"
            raise fail(f"{lost}; {hint}" if hint else lost) from None
        raise unexpected(exc, hint) from None
    finally:
        shutdown_tracing()


def _database_error(exc: BaseException) -> bool:
    """Whether the checkpointer's or the ledger's database went away (anywhere in the chain)."""
    seen: BaseException | None = exc
    for _ in range(10):  # a cause chain may loop
        if seen is None:
            break
        if isinstance(seen, psycopg.OperationalError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


async def _closing(coro: Coroutine[Any, Any, ExitCode]) -> ExitCode:
    try:
        return await coro
    finally:
        await deps.aclose()


async def _snapshot(settings: Settings, record: tasks.TaskRecord) -> StateSnapshot:
    async with checkpointer(settings) as saver:
        return await compile_named(record.team, saver, settings).aget_state(record.config(settings))


def load_repo(path: Path, settings: Settings) -> RepoSnapshot:
    """The repository of `--repo`, within the settings' caps; a usage error when it cannot be."""
    try:
        return ingest_dir(path, RepoCaps.from_settings(settings))
    except RepoError as exc:
        raise fail(f"--repo {path}: {exc}", ExitCode.USAGE) from None


def report_repo(snapshot: RepoSnapshot, path: Path) -> None:
    """Say what was copied, and what was left out, before any work starts."""
    size = sum(len(text.encode()) for text in snapshot.files.values())
    console.print(f"repository {path}: {len(snapshot.files)} files, {size} bytes copied")
    if snapshot.skipped:
        shown = ", ".join(snapshot.skipped[:10]) + (" …" if len(snapshot.skipped) > 10 else "")
        warn(f"left out (binary or symlink): {shown}")


def record_input(record: tasks.TaskRecord, settings: Settings | None = None) -> dict[str, Any]:
    """The graph input a task record stands for (a repository task copies its repository)."""
    if record.repo is not None:
        path = Path(record.repo)
        return repo_input(record.goal, load_repo(path, settings or get_settings()))
    payload: dict[str, Any] = {"goal": record.goal}
    if record.entry_point:
        payload["entry_point"] = record.entry_point
    return payload


async def start_task(settings: Settings, record: tasks.TaskRecord, interactive: bool) -> ExitCode:
    """`strategos run`: a task id is bound to its goal; a new one starts the team."""
    existing = tasks.find(settings, record.task_id)
    if existing is not None and existing.team != record.team:
        raise fail(
            f"task {record.task_id} runs on the {existing.team} team; use another --task-id",
            ExitCode.TASK_CONFLICT,
        )
    snapshot = await _snapshot(settings, record)
    done = _reused(record, existing, snapshot)
    if done is not None:
        return done
    tasks.save(settings, record)
    console.print(f"[bold]task {record.task_id}[/]: {record.goal.strip().splitlines()[0][:100]}")
    return await drive(settings, record, record_input(record, settings), interactive=interactive)


def _reused(
    record: tasks.TaskRecord, existing: tasks.TaskRecord | None, snapshot: StateSnapshot
) -> ExitCode | None:
    """The status when `run` reuses a task id (nothing is touched), or None to start it."""
    values = snapshot.values or {}
    bound = [goal for goal in (existing and existing.goal, values.get("goal")) if goal is not None]
    if not bound:
        return None
    task = record.task_id
    if any(str(goal).strip() != record.goal.strip() for goal in bound):
        raise fail(
            f"task {task} was started with another goal; use another --task-id (or none)",
            ExitCode.TASK_CONFLICT,
        )
    if values.get("report"):
        console.print(f"task {task} is already finished; `strategos show {task}` shows it")
        return outcome_code(values["report"])
    if snapshot.interrupts:
        raise fail(
            f"task {task} is waiting for approval: `strategos approve {task}`",
            ExitCode.TASK_CONFLICT,
        )
    if values:
        raise fail(
            f"task {task} was started and is not finished: `strategos resume {task}`",
            ExitCode.TASK_CONFLICT,
        )
    return None  # recorded, never checkpointed: nothing ran yet, so start it


async def resume_task(settings: Settings, record: tasks.TaskRecord, interactive: bool) -> ExitCode:
    """`strategos resume`: continue from the last checkpoint and the writes saved after it."""
    snapshot = await _snapshot(settings, record)
    values = snapshot.values or {}
    payload: Any = None
    task = record.task_id
    if snapshot.interrupts:
        payload = ask(snapshot, task, interactive)
        if payload is None:
            return ExitCode.PAUSED
    elif values.get("report"):
        console.print(f"task {task} is already finished")
        print_report(values["report"], 0.0, task)
        return outcome_code(values["report"])
    elif not values:
        console.print(f"task {task} has no checkpoint yet; starting it from its record")
        payload = record_input(record, settings)
    else:
        where = f"at {', '.join(snapshot.next)}" if snapshot.next else "after its last saved step"
        console.print(f"resuming task {task} {where}")
    return await drive(settings, record, payload, interactive=interactive)


async def answer_task(
    settings: Settings, record: tasks.TaskRecord, approved: bool, comment: str
) -> ExitCode:
    """`strategos approve`: answer the pending approval, then let the team continue."""
    snapshot = await _snapshot(settings, record)
    if not snapshot.interrupts:
        raise fail(f"task {record.task_id} is not waiting for approval", ExitCode.TASK_CONFLICT)
    payload: Command[Any] = Command(resume={"approved": approved, "comment": comment})
    return await drive(settings, record, payload, interactive=sys.stdin.isatty())


async def show_task(settings: Settings, record: tasks.TaskRecord, as_json: bool) -> ExitCode:
    """`strategos show`: a query, so it succeeds whatever the task's state."""
    print_status(await _snapshot(settings, record), record.task_id, as_json)
    return ExitCode.OK


def ask(snapshot: StateSnapshot, task_id: str, interactive: bool) -> Command[Any] | None:
    """Put the pending approval to the human on a terminal; None when there is nobody to ask."""
    value = snapshot.interrupts[0].value
    show_request(request_of(value) or value)
    if not interactive:
        print_paused(task_id)
        return None
    approved = Confirm.ask("Approve this delivery?", console=console)
    comment = "" if approved else Prompt.ask("What should change?", console=console)
    return Command(resume={"approved": approved, "comment": comment})


async def drive(
    settings: Settings, record: tasks.TaskRecord, payload: Any, *, interactive: bool
) -> ExitCode:
    """Stream the task until it ends or pauses; handle approvals on a terminal.

    Checkpoints are written before each next step (`durability="sync"`): a lost database stops
    the task at the step it could not save, instead of spending model calls on steps that
    cannot be saved either.
    """
    ctx = record.context(settings)
    ctx.model = chat_model(settings)
    config = record.config(settings)
    started = time.monotonic()
    report: dict[str, Any] | None = None
    async with checkpointer(settings) as saver:
        graph: Graph = compile_named(record.team, saver, settings)
        view = _view(await graph.aget_state(config))
        while True:
            try:
                with view:
                    async for mode, chunk in graph.astream(
                        payload, config, context=ctx, stream_mode=STREAM_MODES, durability="sync"
                    ):
                        view.handle(mode, chunk)
            except GraphRecursionError:
                report = await _stopped_by_recursion_limit(graph, config)
                break
            snapshot = await graph.aget_state(config)
            if not snapshot.interrupts:
                report = (snapshot.values or {}).get("report")
                break
            payload = ask(snapshot, record.task_id, interactive)
            if payload is None:
                return ExitCode.PAUSED
    if not report:
        task = record.task_id
        raise fail(f"task {task} stopped without a report; `strategos show {task}` shows why")
    by_role = await role_spending(record.task_id, settings)
    print_report(report, time.monotonic() - started, record.task_id, by_role)
    return outcome_code(report)


def _view(snapshot: StateSnapshot) -> LiveView:
    values = snapshot.values or {}
    usage = values.get("usage") or {}
    return LiveView(
        console,
        steps=int(values.get("steps", 0)),
        tokens=int(usage.get("prompt_tokens", 0)) + int(usage.get("completion_tokens", 0)),
    )


async def _stopped_by_recursion_limit(graph: Graph, config: Any) -> dict[str, Any]:
    """Finish a task LangGraph aborted at its recursion limit: a report, not a traceback.

    The supervisor's guards normally stop the team first; if the limit still wins, the task is
    closed as not delivered with the reason, so `show` and `resume` see a finished task.
    """
    values = dict((await graph.aget_state(config)).values or {})
    reason = f"LangGraph's recursion limit ({config['recursion_limit']}) stopped the team"
    report = build_report(cast(TeamState, {**values, "stop_reason": reason}), [], None)
    report["approval"] = values.get("approval")  # as recorded: no answer is not a refusal
    update = {"report": report, "stop_reason": reason, "delivered": []}
    await graph.aupdate_state(config, update, as_node="deliver")
    return report
