"""The coding benchmark: the team and one plain request, side by side, on hidden tests.

Each task's hidden `test` runs in the sandbox against the delivered code and is never shown to
the team. Both modes use the same model, the same coder prompt and the same retry rules, so the
difference is what the team adds.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NotRequired, TypedDict

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph.state import CompiledStateGraph
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from eval.bench_files import (
    BenchResults,
    BenchRow,
    previous_rows,
    summarize,
    totals_table,
    write,
)
from eval.checking import run_hidden_tests
from eval.datasets import CodingTask, load_dataset
from eval.pools import append, pool_updates, pools_path, record
from graphs.context import TeamContext
from graphs.deps import text_of
from graphs.selection_state import PooledCandidate, SelectionState
from graphs.state import TeamInput, TeamState, files_to_deliver
from nodes.candidates import extract_code
from nodes.coder import MAIN_FILE, CodeEdit
from nodes.prompting import PIPELINE_PROMPTS
from nodes.prompts import load_prompt
from service import deps
from service.llm.models import StructuredOutputError, chat_model, structured_call, usage_of
from service.settings import Settings
from service.tasks import recursion_limit
from service.team_deps import compile_pipeline, compile_selection
from tools.builtin import default_registry
from tools.gateway import ToolGateway
from tools.ledger import open_ledger
from tools.sandbox import LocalSandbox, Sandbox

type _Team = (
    CompiledStateGraph[TeamState, TeamContext, TeamInput, TeamState]
    | CompiledStateGraph[SelectionState, TeamContext, TeamInput, SelectionState]
)


class _Outcome(TypedDict):
    """What one mode produced for a task, before the hidden tests score it."""

    code: str
    iterations: int
    stop_reason: str
    model_calls: NotRequired[int]
    prompt_tokens: NotRequired[int]
    completion_tokens: NotRequired[int]
    cost_usd: NotRequired[float]


def goal_of(task: CodingTask) -> str:
    """The goal a team is given for a task: the function to complete and its prompt."""
    return (
        f"Complete this Python function `{task.entry_point}` (keep its signature and any helper "
        f"code above it):\n\n{task.prompt}"
    )


@dataclass
class _Trace:
    """What a team run leaves besides its code: its final state and every judged candidate."""

    state: dict[str, Any] = field(default_factory=dict)
    seen: list[PooledCandidate] = field(default_factory=list)


async def _run_team(graph: _Team, task: CodingTask, ctx: TeamContext, trace: _Trace) -> _Outcome:
    """Run a team graph on one task; its best code and what it cost."""
    config: RunnableConfig = {
        "configurable": {"thread_id": task.task_id},
        "recursion_limit": recursion_limit(deps.limits(ctx).max_steps),
    }
    stream = graph.astream(
        {"goal": goal_of(task), "entry_point": task.entry_point},
        config,
        context=ctx,
        stream_mode=["updates", "values"],
    )
    async for kind, chunk in stream:
        if kind == "values" and isinstance(chunk, dict):
            trace.state = chunk
        elif isinstance(chunk, dict):
            for update in chunk.values():
                trace.seen.extend(pool_updates(update or {}))
    state = trace.state
    files = files_to_deliver(state)
    usage = state.get("usage", {})
    return {
        "code": files.get(MAIN_FILE, ""),
        "iterations": state.get("iteration", 0),
        "stop_reason": state.get("stop_reason", ""),
        "model_calls": usage.get("model_calls", 0),
        "prompt_tokens": usage.get("prompt_tokens", 0),
        "completion_tokens": usage.get("completion_tokens", 0),
    }


async def _single_shot(task: CodingTask, ctx: TeamContext, retries: int) -> _Outcome:
    request = f"Goal:\n{goal_of(task)}\n\nThe function to implement is `{task.entry_point}`."
    edit, usage = await structured_call(
        ctx.model,
        load_prompt("coder", PIPELINE_PROMPTS["coder"]).text,
        request,
        CodeEdit,
        retries=retries,
    )
    files = {item.path: item.content for item in edit.files}
    code = files.get(MAIN_FILE) or next(iter(files.values()))
    return {"code": code, "iterations": 1, "stop_reason": "", **usage}


PLAIN_SYSTEM = "You are an expert Python programmer."
MODES = ("team", "selection", "cascade", "plain", "single-shot")
"""`team`: the pipeline team; `selection`: the execution-first team; `cascade`: the same team
sampling only when its greedy answer is unsure (`sample_when="unsure"`); `plain`: one request
for the code in a fenced block (the strongest plain baseline); `single-shot`: the coder's JSON
prompt once."""


async def _plain(task: CodingTask, ctx: TeamContext) -> _Outcome:
    """One greedy request asking for the code in a fenced block, as a person would ask."""
    request = (
        f"{goal_of(task)}\n\nAnswer with the complete Python code of `{task.entry_point}` "
        "(and any imports and helpers it needs) in one ```python code block."
    )
    reply = await ctx.model.ainvoke([SystemMessage(PLAIN_SYSTEM), HumanMessage(request)])
    code = extract_code(text_of(reply), task.entry_point)
    return {"code": code, "iterations": 1, "stop_reason": "", **usage_of(reply)}


async def _outcome(
    task: CodingTask, mode: str, ctx: TeamContext, settings: Settings, trace: _Trace
) -> _Outcome:
    if mode == "team":
        return await _run_team(compile_pipeline(InMemorySaver(), settings), task, ctx, trace)
    if mode in ("selection", "cascade"):
        when = "unsure" if mode == "cascade" else settings.sample_when
        chosen = settings.model_copy(update={"sample_when": when})
        return await _run_team(compile_selection(InMemorySaver(), chosen), task, ctx, trace)
    if mode == "plain":
        return await _plain(task, ctx)
    return await _single_shot(task, ctx, settings.structured_retries)


async def run_task(
    task: CodingTask,
    mode: str,
    settings: Settings,
    model: BaseChatModel,
    sandbox: Sandbox,
    gateway: ToolGateway | None = None,
    pools: Path | None = None,
) -> BenchRow:
    """One task in one mode: produce code, then score it on the hidden tests.

    With `pools`, a `selection` run also appends what it chose from (`eval.pools`).
    """
    started = time.monotonic()
    trace = _Trace()
    with tempfile.TemporaryDirectory(prefix="strategos-bench-") as tmp:
        ctx = TeamContext(
            approve="auto",
            use_memory=False,  # tasks are scored independently: no lessons between them
            out_dir=str(Path(tmp) / "out"),
            model=model,
            sandbox=sandbox,
            gateway=gateway,
        )
        outcome: _Outcome
        try:
            outcome = await _outcome(task, mode, ctx, settings, trace)
            error = ""
        except StructuredOutputError as exc:
            outcome = {"code": "", "iterations": 0, "stop_reason": str(exc), **exc.usage}
            error = str(exc)
        except Exception as exc:  # noqa: BLE001 - one broken task must not lose the whole run
            error = f"crashed: {type(exc).__name__}: {exc}"[:1000]
            outcome = {"code": "", "iterations": 0, "stop_reason": error}
    hidden = await run_hidden_tests(task, outcome["code"], sandbox)
    wall_s = round(time.monotonic() - started, 2)  # scoring the pool below is not the task's
    if pools is not None and trace.seen:
        append(pools, await record(task, trace.state, trace.seen, sandbox))
    return {
        "task_id": task.task_id,
        "mode": mode,
        "passed": hidden.passed,
        "model_calls": outcome.get("model_calls", 0),
        "prompt_tokens": outcome.get("prompt_tokens", 0),
        "completion_tokens": outcome.get("completion_tokens", 0),
        "iterations": outcome["iterations"],
        "wall_s": wall_s,
        "stop_reason": outcome["stop_reason"],
        "error": error or hidden.error[-500:],
    }


SAMPLING_SETTINGS = frozenset(
    {
        "samples",
        "sample_temperature",
        "sample_inputs",
        "mutated_inputs",
        "widen_rounds",
        "sample_when",
        "repair_rounds",
        "referee",
        "llama_parallel",
    }
)


def sampling_of(settings: Settings) -> dict[str, object]:
    """The execution-first team's settings, kept in a results file: N, inputs, widening."""
    return settings.model_dump(include=set(SAMPLING_SETTINGS))


@dataclass(frozen=True)
class _Plan:
    """What one benchmark run covers, and so what its results file says it covered."""

    settings: Settings
    dataset: str
    modes: list[str]
    chosen: list[CodingTask]
    offset: int
    limit: int | None

    def results(self, rows: list[BenchRow]) -> BenchResults:
        """The results file for `rows`: only this plan's tasks and modes, with their totals."""
        wanted = {task.task_id for task in self.chosen}
        mine = [row for row in rows if row["task_id"] in wanted and row["mode"] in self.modes]
        return {
            "dataset": self.dataset,
            "offset": self.offset,
            "limit": self.limit,
            "model": self.settings.model,
            "sampling": sampling_of(self.settings),
            "prompts": {
                name: load_prompt(name, PIPELINE_PROMPTS[name]).id
                for name in ("coder", "tester", "reviewer")
            },
            "totals": [summarize(mine, mode) for mode in self.modes],
            "tasks": mine,
        }


async def run_benchmark(
    settings: Settings,
    dataset: str,
    modes: list[str],
    *,
    limit: int | None = None,
    offset: int = 0,
    stride: int = 1,
    console: Console | None = None,
    out: Path | None = None,
) -> BenchResults:
    """Run the selected tasks in every mode and return per-task rows and totals.

    With `out`, results are written after every task, and rows already in that file (same
    dataset) are kept and not run again: an interrupted run continues where it stopped.
    """
    console = console or Console()
    chosen = load_dataset(dataset)[offset::stride][:limit]
    plan = _Plan(settings, dataset, modes, chosen, offset, limit)
    model = chat_model(settings)
    sandbox = LocalSandbox()
    async with _scratch_gateway(sandbox) as gateway:
        rows = previous_rows(out, dataset)
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=console) as progress:
            await _run_rows(plan, rows, progress, model, sandbox, gateway, out)
        results = plan.results(rows)
        if out is not None:
            write(out, results)
        console.print(totals_table(dataset, len(chosen), results))
    return results


@asynccontextmanager
async def _scratch_gateway(sandbox: Sandbox) -> AsyncIterator[ToolGateway]:
    """A gateway on a ledger of this run only, removed after the run.

    A task id repeats across runs; one run's results must not replay in the next.
    """
    scratch = tempfile.TemporaryDirectory(prefix="strategos-bench-ledger-")
    ledger = await open_ledger(str(Path(scratch.name) / "ledger.sqlite"))
    yield ToolGateway(default_registry(), ledger, sandbox=sandbox)
    await ledger.close()
    scratch.cleanup()


async def _run_rows(
    plan: _Plan,
    rows: list[BenchRow],
    progress: Progress,
    model: BaseChatModel,
    sandbox: Sandbox,
    gateway: ToolGateway,
    out: Path | None,
) -> None:
    """Run every task and mode of the plan not in `rows` yet, appending (and saving) each row."""
    done = {(row["task_id"], row["mode"]) for row in rows}
    bar = progress.add_task("benchmark", total=len(plan.chosen) * len(plan.modes))
    for task in plan.chosen:
        for mode in plan.modes:
            if (task.task_id, mode) in done:
                progress.advance(bar)
                continue
            progress.update(bar, description=f"{task.task_id} ({mode})")
            # One pools file per results file: the selection mode's candidates.
            pools = pools_path(out) if out is not None and mode == "selection" else None
            row = await run_task(task, mode, plan.settings, model, sandbox, gateway, pools)
            rows.append(row)
            if out is not None:
                write(out, plan.results(rows))
            mark = "[green]pass[/]" if row["passed"] else "[red]fail[/]"
            progress.console.print(
                f"{task.task_id:<16} {mode:<11} {mark}  calls={row['model_calls']} "
                f"tokens={row['prompt_tokens']}+{row['completion_tokens']} "
                f"{row['wall_s']:.1f}s"
            )
            progress.advance(bar)
