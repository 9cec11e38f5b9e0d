"""`strategos`: run, resume, approve and inspect coding tasks, and run the benchmark."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from pydantic import ValidationError

from service import tasks
from service.architecture_entry import CLI_TEAMS, cli_architecture
from service.cli_dlq import DEFAULT_PORT, dlq
from service.cli_input import check_out_dir, read_goal
from service.cli_output import console, err, fail, flags, quiet_libraries, unexpected
from service.cli_run import (
    answer_task,
    load_repo,
    report_repo,
    resume_task,
    run_async,
    show_task,
    start_task,
)
from service.cli_tracing import check_tracing
from service.exit_codes import ExitCode
from service.settings import Settings, get_settings


class Strategos(typer.Typer):
    """The app, with every error turned into one line and an `ExitCode`.

    Typer would print usage errors in a box and other exceptions as a (long) traceback; a user
    needs what went wrong, and `--debug` brings the traceback back.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the command line and exit with its status; errors print as one line."""
        kwargs["standalone_mode"] = False
        try:
            code = super().__call__(*args, **kwargs)
        except typer.TyperException as exc:  # Typer's (vendored) click errors
            code = _usage_error(exc)
        except typer.Abort:
            code = ExitCode.INTERRUPTED
        except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, status 1
            code = unexpected(exc).exit_code
        sys.exit(int(code) if isinstance(code, int) else 0)


def _usage_error(exc: typer.TyperException) -> int:
    """A usage error as one line; a bare `strategos` has printed its help already."""
    if type(exc).__name__ == "NoArgsIsHelpError":
        return ExitCode.USAGE
    ctx = getattr(exc, "ctx", None)
    where = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
    status = ExitCode.USAGE if exc.exit_code == ExitCode.USAGE else ExitCode.ERROR
    return fail(exc.format_message() + where, status).exit_code


app = Strategos(add_completion=False, no_args_is_help=True, help=__doc__)
app.add_typer(dlq, name="dlq")


@app.callback()
def _main(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the traceback of an error, not one line.")
    ] = False,
) -> None:
    """Turn SIGTERM into a normal exit, so the local model server is stopped with us."""
    flags.debug = debug
    quiet_libraries(debug)
    signal.signal(signal.SIGTERM, _terminate)


SIGTERM_GRACE_S = 10.0
"""How long a SIGTERMed command may take to unwind before it exits regardless."""


def _terminate(_signum: int, _frame: object) -> None:
    """Unwind normally (the task is checkpointed, the model server stopped), but surely.

    The exception can land while a thread holds a lock the unwinding needs (a progress bar's
    refresh thread, a library's pool), and a command that hangs on SIGTERM keeps gigabytes of
    model server alive. So a timer ends the process after a grace period; the model server and
    other tied children die with it (`service.children`).
    """
    timer = threading.Timer(SIGTERM_GRACE_S, os._exit, args=(128 + signal.SIGTERM,))
    timer.daemon = True
    timer.start()
    sys.exit(128 + signal.SIGTERM)


ApproveOpt = Annotated[
    str, typer.Option("--approve", help="Sensitive steps: ask (default), auto or deny.")
]


def _approve_mode(value: str) -> Literal["ask", "auto", "deny"]:
    if value not in ("ask", "auto", "deny"):
        raise fail(f"--approve must be ask, auto or deny, not {value!r}", ExitCode.USAGE)
    return value  # type: ignore[return-value]


def _interactive(record: tasks.TaskRecord) -> bool:
    return record.approve == "ask" and sys.stdin.isatty()


@app.command()
def run(
    goal: Annotated[
        str | None, typer.Argument(help="The programming goal, in words ('-' reads it from stdin).")
    ] = None,
    goal_file: Annotated[
        Path | None,
        typer.Option("--goal-file", help="Read the goal from a file ('-' for stdin)."),
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Where to deliver the files.")] = None,
    approve: ApproveOpt = "ask",
    entry_point: Annotated[str | None, typer.Option(help="Name of the function to write.")] = None,
    max_steps: Annotated[int | None, typer.Option(min=1, help="Agent step limit.")] = None,
    token_budget: Annotated[int | None, typer.Option(min=1, help="Token budget.")] = None,
    task_id: Annotated[str | None, typer.Option(help="Choose the task id.")] = None,
    team: Annotated[
        str | None,
        typer.Option(help="pipeline or selection (default: STRATEGOS_TEAM, else pipeline)."),
    ] = None,
    repo: Annotated[
        Path | None,
        typer.Option(
            "--repo", help="Work on a copy of this repository and deliver a patch for review."
        ),
    ] = None,
    architecture: Annotated[
        str | None,
        typer.Option(
            help="auto, team, selection or repo_agent (default: STRATEGOS_ARCHITECTURE_DEFAULT, "
            "else auto: the configured team, or the repository agent with --repo)."
        ),
    ] = None,
) -> None:
    """Start a task and stream the team's work until it is delivered or needs approval.

    Everything is checked before the first model call: the goal, the options and that `--out`
    can be written. A task id is bound to its goal: reusing it for another goal is refused.
    """
    settings = get_settings()
    text = read_goal(goal, goal_file)
    mode = _approve_mode(approve)
    if entry_point is not None and not entry_point.isidentifier():
        raise fail(f"--entry-point must be a Python name, not {entry_point!r}", ExitCode.USAGE)
    if repo is not None:
        if team is not None:
            raise fail("--repo runs the repository agent; leave out --team", ExitCode.USAGE)
        repo = repo.resolve()
    chosen = _architecture(architecture, team, repo is not None, settings)
    if repo is not None:
        report_repo(load_repo(repo, settings), repo)
    task = task_id or tasks.new_task_id()
    delivery = check_out_dir(out) if out else (tasks.task_dir(settings, task) / "delivered")
    delivery = delivery.resolve()
    try:
        record = tasks.TaskRecord(
            task_id=task,
            goal=text,
            entry_point=entry_point,
            approve=mode,
            out_dir=str(delivery),
            max_steps=max_steps,
            token_budget=token_budget,
            team=CLI_TEAMS[chosen],
            repo=str(repo) if repo else None,
        )
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise fail(problems, ExitCode.USAGE) from None
    check_tracing()
    console.print(f"architecture: {chosen}")
    code = run_async(start_task(settings, record, _interactive(record)), settings, task)
    raise typer.Exit(code)


def _architecture(requested: str | None, team: str | None, has_repo: bool, s: Settings) -> str:
    """The architecture this run takes (`service.architecture_entry`); one line when none fits."""
    try:
        return cli_architecture(requested, team, has_repo, s)
    except ValueError as exc:
        raise fail(str(exc), ExitCode.USAGE) from None


@app.command()
def resume(task_id: str) -> None:
    """Continue a task from its last checkpoint (after a crash or a kill)."""
    settings = get_settings()
    record = _load(task_id)
    check_tracing()
    code = run_async(resume_task(settings, record, _interactive(record)), settings, task_id)
    raise typer.Exit(code)


@app.command("approve")
def approve_cmd(
    task_id: str,
    reject: Annotated[bool, typer.Option("--reject", help="Reject instead of approving.")] = False,
    comment: Annotated[str, typer.Option(help="What the team should change.")] = "",
) -> None:
    """Answer a paused task's approval request, then let the team continue."""
    settings = get_settings()
    record = _load(task_id)
    check_tracing()
    code = run_async(answer_task(settings, record, not reject, comment), settings, task_id)
    raise typer.Exit(code)


@app.command()
def show(task_id: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Show a task's status, latest messages and report."""
    settings = get_settings()
    record = _load(task_id)
    raise typer.Exit(run_async(show_task(settings, record, as_json), settings, task_id))


def _load(task_id: str) -> tasks.TaskRecord:
    try:
        return tasks.load(get_settings(), task_id)
    except tasks.TaskNotFoundError as exc:
        raise fail(str(exc), ExitCode.USAGE) from exc


@app.command()
def bench(
    dataset: Annotated[str, typer.Option(help="'humaneval' or a JSONL file in its format.")],
    limit: Annotated[int | None, typer.Option(min=1)] = None,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    stride: Annotated[int, typer.Option(min=1, help="Every K-th task from the offset.")] = 1,
    mode: Annotated[
        list[str] | None, typer.Option(help="team, selection, plain and/or single-shot.")
    ] = None,
    out: Annotated[Path, typer.Option(help="Where to write the JSON results.")] = Path(
        "bench-results.json"
    ),
) -> None:
    """Run coding tasks through the team and/or one plain request; score on hidden tests.

    Results are written after every task; running the same command again continues an
    interrupted run instead of starting over.
    """
    from eval.bench import MODES, run_benchmark

    modes = mode or ["team", "single-shot"]
    for item in modes:
        if item not in MODES:
            raise fail(f"--mode must be one of {', '.join(MODES)}, not {item!r}", ExitCode.USAGE)
    settings = get_settings()
    check_tracing()
    try:
        asyncio.run(
            run_benchmark(
                settings,
                dataset,
                modes,
                limit=limit,
                offset=offset,
                stride=stride,
                console=console,
                out=out,
            )
        )
    except (ValueError, OSError) as exc:
        raise fail(str(exc)) from exc
    console.print(f"results written to {out}")


@app.command("eval")
def eval_cmd(
    model: Annotated[
        str | None,
        typer.Option(help="'scripted' (each case's own script; the default) or 'real'."),
    ] = None,
    judge: Annotated[
        bool,
        typer.Option(
            "--judge", help="Measure the reviewer judge against the hand-labelled remarks instead."
        ),
    ] = False,
    upload: Annotated[
        bool,
        typer.Option("--upload", help="Also upload the results as a LangSmith experiment."),
    ] = False,
    out: Annotated[Path | None, typer.Option(help="Where to write the JSON results.")] = None,
) -> None:
    """Run the trajectory cases and score each against its reference trajectory.

    With --judge, the LLM judge of reviewer remarks runs over the labelled set on the
    configured model and its agreement with the labels is reported. With --upload and
    LANGSMITH_API_KEY set, the trajectory results become a LangSmith experiment; without a key
    nothing leaves the machine.
    """
    from eval.trajectory_run import load_cases, results_table, run_trajectory_eval

    if model not in (None, "scripted", "real"):
        raise fail(f"--model must be scripted or real, not {model!r}", ExitCode.USAGE)
    if judge and (model == "scripted" or upload):
        raise fail("--judge runs on the configured model, without --model scripted or --upload")
    settings = get_settings()
    check_tracing()
    try:
        if judge:
            found = asyncio.run(_measure_judge(settings))
        else:
            real = model == "real"
            found = asyncio.run(run_trajectory_eval(load_cases(), settings, real, console))
            console.print(results_table(found))
    except (ValueError, OSError) as exc:
        raise fail(str(exc)) from exc
    if out is not None:
        out.write_text(json.dumps(found, indent=1) + "\n", encoding="utf-8")
        console.print(f"results written to {out}")
    if upload:
        from eval.langsmith_upload import upload_experiment

        console.print(upload_experiment(load_cases(), found), highlight=False, soft_wrap=True)


async def _measure_judge(settings: Settings) -> dict[str, Any]:
    """`strategos eval --judge`: the judge's agreement with the labels, printed as a table."""
    from eval.judge_agreement import agreement_table, load_labelled, measure_agreement
    from service.llm.models import chat_model

    found = await measure_agreement(load_labelled(), chat_model(settings), console)
    found = {"model": "scripted" if settings.scripted_model else settings.model, **found}
    console.print(agreement_table(found))
    return found


@app.command()
def prepare() -> None:
    """Download and build the embedded model (weights and llama-server) into the cache."""
    from service.llm.local_model import prepare as prepare_model

    paths = prepare_model(get_settings(), err)
    console.print(f"weights: {paths.weights}\nserver:  {paths.server}")


@app.command()
def serve(
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = DEFAULT_PORT,
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
    from service.serving.serve import serve as serve_aegra

    try:
        code = serve_aegra(host, port, config, get_settings())
    except (FileNotFoundError, ValueError, OSError) as exc:
        raise fail(str(exc)) from exc
    raise typer.Exit(code)


if __name__ == "__main__":
    app()
