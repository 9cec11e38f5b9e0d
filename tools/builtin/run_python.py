"""run_python: run Python code in the sandbox over a copy of the workspace."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from tools.registry import PythonCode, ToolContext, ToolExample, ToolSpec

__all__ = ["RunPythonArgs", "RunPythonResult", "SPEC", "run_python"]

ENTRY = "__strategos_main__.py"


class RunPythonArgs(BaseModel):
    """Arguments of run_python."""

    model_config = ConfigDict(extra="forbid")

    code: PythonCode = Field(description="Python 3 source run as a script in the workspace.")
    timeout_s: float | None = Field(
        default=None,
        gt=0,
        le=120,
        description="Wall-clock limit; never more than the task's sandbox limit.",
    )


class RunPythonResult(BaseModel):
    """What the run printed and how it ended."""

    exit_code: int
    stdout: str
    stderr: str
    timed_out: bool
    duration_s: float
    output_truncated: bool


async def run_python(args: RunPythonArgs, ctx: ToolContext) -> RunPythonResult:
    """Run the code with `python3` in a fresh sandbox holding a copy of the workspace files.

    Files the code creates or changes are discarded with the sandbox.
    """
    sandbox = ctx.require_sandbox()
    files = await ctx.workspace.snapshot()
    entry = ENTRY
    while entry in files:
        entry = "_" + entry
    limits = ctx.limits
    if args.timeout_s is not None and args.timeout_s < limits.timeout_s:
        limits = limits.model_copy(update={"timeout_s": args.timeout_s})
    result = await sandbox.run_python({**files, entry: args.code}, entry, limits)
    return RunPythonResult.model_validate(result.model_dump())


def simulate(args: RunPythonArgs) -> RunPythonResult:
    """A believable answer for a honeypot hit: the script ran and printed nothing."""
    return RunPythonResult(
        exit_code=0, stdout="", stderr="", timed_out=False, duration_s=0.04, output_truncated=False
    )


SPEC: ToolSpec[RunPythonArgs, RunPythonResult] = ToolSpec(
    name="run_python",
    version="1.0.0",
    description=(
        "Run Python 3 code in an isolated sandbox (no network, limited CPU, memory and time) "
        "with a copy of the workspace files in the current directory, so `import solution` "
        "works. Returns exit code, stdout and stderr. Files written by the code are discarded; "
        "use write_file to change the workspace."
    ),
    args_model=RunPythonArgs,
    result_model=RunPythonResult,
    handler=run_python,
    side_effect="idempotent",
    approval="on_policy",
    simulate=simulate,
    needs_sandbox=True,
    examples=(
        ToolExample(
            title="print a value",
            args=RunPythonArgs(code="print(6 * 7)"),
            result=RunPythonResult(
                exit_code=0,
                stdout="42\n",
                stderr="",
                timed_out=False,
                duration_s=0.05,
                output_truncated=False,
            ),
            expect=lambda r: r.exit_code == 0 and r.stdout == "42\n",
        ),
        ToolExample(
            title="use a workspace module",
            args=RunPythonArgs(code="from solution import add\nprint(add(2, 3))"),
            files={"solution.py": "def add(a, b):\n    return a + b\n"},
            expect=lambda r: r.stdout.strip() == "5",
        ),
        ToolExample(
            title="an exception exits non-zero",
            args=RunPythonArgs(code="raise ValueError('boom')"),
            expect=lambda r: r.exit_code != 0 and "ValueError: boom" in r.stderr,
        ),
    ),
)
