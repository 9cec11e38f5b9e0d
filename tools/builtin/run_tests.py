"""run_tests: run checks (call == expected) or a file of test_* functions in the sandbox."""

from __future__ import annotations

import json
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tools.checks import RESULT_MARKER, Check, parse_report, runner_files
from tools.errors import ToolError
from tools.registry import (
    CODE_FORMAT,
    ToolContext,
    ToolExample,
    ToolSpec,
    WorkspacePath,
)

__all__ = ["CheckCase", "RunTestsArgs", "RunTestsResult", "SPEC", "TestOutcome", "run_tests"]

RUNNER = "__strategos_tests__.py"
# A pytest-less runner: every top-level callable named test_* in the file, in definition order,
# each under its own alarm; prints the same report format as tools.checks' runner.
_TEST_FILE_RUNNER = r"""
import json, runpy, signal, sys, traceback

def _alarm(signum, frame):
    raise TimeoutError("timed out after PER_TEST_S s")

report = {"outcomes": [], "error": ""}
sys.path.insert(0, ".")
try:
    namespace = runpy.run_path(TEST_FILE, run_name="strategos_tests")
except BaseException as exc:
    report["error"] = "".join(traceback.format_exception_only(type(exc), exc)).strip()[-1500:]
else:
    signal.signal(signal.SIGALRM, _alarm)
    tests = [(n, f) for n, f in namespace.items() if n.startswith("test_") and callable(f)]
    for name, func in tests:
        outcome = {"name": name, "source": "model", "passed": False, "error": ""}
        try:
            signal.alarm(PER_TEST_S)
            func()
            signal.alarm(0)
            outcome["passed"] = True
        except BaseException as exc:
            signal.alarm(0)
            last = traceback.extract_tb(exc.__traceback__)[-1]
            detail = str(exc)[:300] or "assertion failed"
            outcome["error"] = "%s: %s: %s (line %s: %s)" % (
                name, type(exc).__name__, detail, last.lineno, (last.line or "").strip())
        report["outcomes"].append(outcome)
sys.stdout.write("\nMARKER" + json.dumps(report) + "\n")
"""


class CheckCase(BaseModel):
    """`call` must evaluate to `expected`; both are Python expressions."""

    model_config = ConfigDict(extra="forbid")

    call: str = Field(
        min_length=1,
        max_length=2000,
        examples=["add(2, 3)"],
        json_schema_extra={"format": CODE_FORMAT},
    )
    expected: str = Field(
        min_length=1, max_length=2000, examples=["5"], json_schema_extra={"format": CODE_FORMAT}
    )
    source: Literal["spec", "model"] = Field(
        default="model", description="'spec' for examples stated in the task itself."
    )

    @model_validator(mode="after")
    def _parses(self) -> Self:
        Check(call=self.call, expected=self.expected, source=self.source)
        return self


class RunTestsArgs(BaseModel):
    """Arguments of run_tests: either `checks` or `test_file`."""

    model_config = ConfigDict(extra="forbid")

    checks: list[CheckCase] = Field(default_factory=list, max_length=100)
    test_file: WorkspacePath | None = Field(
        default=None, description="A workspace file whose test_* functions are run."
    )
    module: WorkspacePath = Field(
        default="solution.py", description="The module the checks call into."
    )
    per_test_s: int = Field(default=5, ge=1, le=60, description="Time limit of each test.")

    @model_validator(mode="after")
    def _one_mode(self) -> Self:
        if bool(self.checks) == bool(self.test_file):
            raise ValueError("give either a non-empty `checks` list or a `test_file`, not both")
        return self


class TestOutcome(BaseModel):
    """One check or test function."""

    name: str
    source: Literal["spec", "model", "test"]
    passed: bool
    error: str = ""


class RunTestsResult(BaseModel):
    """Counts and per-test outcomes; `error` is set when the code could not even load."""

    passed: int
    failed: int
    total: int
    outcomes: list[TestOutcome]
    error: str = ""
    timed_out: bool = False


async def run_tests(args: RunTestsArgs, ctx: ToolContext) -> RunTestsResult:
    """Run the tests in a sandbox over a copy of the workspace."""
    sandbox = ctx.require_sandbox()
    files = await ctx.workspace.snapshot()
    if args.test_file is not None:
        if args.test_file not in files:
            raise ToolError(f"No test file {args.test_file!r} in the workspace.")
        runner = (
            _TEST_FILE_RUNNER.replace("MARKER", RESULT_MARKER)
            .replace("PER_TEST_S", str(args.per_test_s))
            .replace("TEST_FILE", json.dumps(args.test_file))
        )
        run_files = {**files, RUNNER: runner}
        entry, source = RUNNER, "test"
    else:
        if args.module not in files:
            raise ToolError(
                f"No module {args.module!r} in the workspace; write it first or set `module`."
            )
        code = {**files, "solution.py": files[args.module]}
        checks = [Check(call=c.call, expected=c.expected, source=c.source) for c in args.checks]
        run_files = runner_files(code, checks, per_check_s=args.per_test_s)
        entry, source = "run_checks.py", ""
    result = await sandbox.run_python(run_files, entry, ctx.limits)
    report = parse_report(result.stdout, result.stderr, result.exit_code, result.timed_out)
    outcomes = [
        TestOutcome(
            name=o.name, source="test" if source else o.source, passed=o.passed, error=o.error
        )
        for o in report.outcomes
    ]
    passed = sum(o.passed for o in outcomes)
    return RunTestsResult(
        passed=passed,
        failed=len(outcomes) - passed,
        total=len(outcomes),
        outcomes=outcomes,
        error=report.error,
        timed_out=result.timed_out,
    )


def simulate(args: RunTestsArgs) -> RunTestsResult:
    """A believable answer for a honeypot hit: everything passed."""
    outcomes = [
        TestOutcome(name=f"{c.call} == {c.expected}", source=c.source, passed=True)
        for c in args.checks
    ]
    return RunTestsResult(passed=len(outcomes), failed=0, total=len(outcomes), outcomes=outcomes)


SPEC: ToolSpec[RunTestsArgs, RunTestsResult] = ToolSpec(
    name="run_tests",
    version="1.0.0",
    description=(
        "Run tests in the sandbox against the workspace. Either `checks`: a list of "
        "{call, expected} Python expressions evaluated against `module` (default "
        '\'solution.py\'), e.g. {"call": "add(2, 3)", "expected": "5"}; or `test_file`: a '
        "workspace file whose test_* functions are called (plain asserts, no pytest). Returns "
        "pass/fail per test with the actual value or the error."
    ),
    args_model=RunTestsArgs,
    result_model=RunTestsResult,
    handler=run_tests,
    side_effect="idempotent",
    approval="on_policy",
    simulate=simulate,
    needs_sandbox=True,
    examples=(
        ToolExample(
            title="checks against solution.py",
            args=RunTestsArgs(
                checks=[
                    CheckCase(call="add(2, 3)", expected="5", source="spec"),
                    CheckCase(call="add(-1, 1)", expected="1"),
                ]
            ),
            files={"solution.py": "def add(a, b):\n    return a + b\n"},
            result=RunTestsResult(
                passed=1,
                failed=1,
                total=2,
                outcomes=[
                    TestOutcome(name="add(2, 3) == 5", source="spec", passed=True),
                    TestOutcome(
                        name="add(-1, 1) == 1",
                        source="model",
                        passed=False,
                        error="add(-1, 1) returned 0, expected 1",
                    ),
                ],
            ),
            expect=lambda r: (
                r.passed == 1 and r.failed == 1 and "returned 0" in r.outcomes[1].error
            ),
        ),
        ToolExample(
            title="a file of test functions",
            args=RunTestsArgs(test_file="test_add.py"),
            files={
                "solution.py": "def add(a, b):\n    return a + b\n",
                "test_add.py": (
                    "from solution import add\n\n"
                    "def test_small():\n    assert add(1, 1) == 2\n\n"
                    "def test_wrong():\n    assert add(1, 1) == 3, 'one plus one'\n"
                ),
            },
            expect=lambda r: (
                [o.passed for o in r.outcomes] == [True, False]
                and "one plus one" in r.outcomes[1].error
            ),
        ),
    ),
)
