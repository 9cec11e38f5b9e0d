"""run_repo_tests: run a repository's own pytest suite on the task's working copy, in the sandbox.

The agent changes a copy of the repository; whether the change is right is what the repository's
own tests say. They run under the sandbox's limits over a throw-away copy of the workspace, with
the sandbox interpreter's pytest (Debian's `python3-pytest`; a sandbox without it gets a clear
error). A small runner calls `pytest.main` with a plugin that collects each test's outcome, so
the result is structured (failed test ids, a bounded excerpt of the failures) instead of a
terminal transcript; pytest's own output is kept only for when nothing ran (a usage or
collection error). The report is printed after a random per-run marker and the runner exits at
once (`os._exit`, no atexit hooks), so a test printing a look-alike report does not replace it.
Running tests changes nothing outside the sandbox, so no approval; the call is ledgered all the
same (`idempotent`), so a resumed task replays a suite run that completed instead of rerunning.
"""

from __future__ import annotations

import json
import secrets

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tools.errors import ToolError
from tools.registry import ToolContext, ToolExample, ToolSpec
from tools.sandbox.base import InvalidWorkspacePath, validate_workspace_path

__all__ = ["RunRepoTestsArgs", "RunRepoTestsResult", "SPEC", "run_repo_tests"]

RUNNER = "__strategos_pytest__.py"
MAX_FAILED_IDS = 50
MAX_EXCERPT = 4000
_EACH_EXCERPT = 1200
# Runs inside the sandbox with the sandbox's python3. ARGS and MARKER are filled in per run.
_RUNNER = r"""
import contextlib, io, json, os, sys
sys.dont_write_bytecode = True
out = {"exit_code": 0, "passed": 0, "failed": [], "skipped": 0, "excerpt": [], "output": ""}
try:
    import pytest
except ImportError:
    out["exit_code"] = -1
    out["output"] = "pytest is not installed for the sandbox's python3 (python3-pytest)"
else:
    class Collect:
        def pytest_runtest_logreport(self, report):
            if report.failed:
                if report.nodeid not in out["failed"]:
                    out["failed"].append(report.nodeid)
                    out["excerpt"].append(report.nodeid + " (" + report.when + ")\n"
                                          + report.longreprtext[-EACH:])
            elif report.skipped:
                out["skipped"] += 1
            elif report.when == "call":
                out["passed"] += 1
        def pytest_collectreport(self, report):
            if report.failed:
                out["failed"].append(report.nodeid or "<collection>")
                out["excerpt"].append("collecting " + report.nodeid + "\n"
                                      + report.longreprtext[-EACH:])
    text = io.StringIO()
    with contextlib.redirect_stdout(text), contextlib.redirect_stderr(text):
        code = pytest.main(ARGS, plugins=[Collect()])
    out["exit_code"] = int(code)
    out["output"] = text.getvalue()[-EACH:]
sys.__stdout__.write("\nMARKER" + json.dumps(out) + "\n")
sys.__stdout__.flush()
os._exit(0)  # the report is the last word: no atexit hook of the code under test runs after it
"""


def _target(value: str) -> str:
    """A test file, directory or node id (`tests/test_a.py::test_x`) inside the workspace."""
    path, _, rest = value.partition("::")
    try:
        validate_workspace_path(path.rstrip("/"))
    except InvalidWorkspacePath as exc:
        raise ValueError(str(exc)) from None
    if value.startswith("-") or any(c in value for c in "\x00\n\r"):
        raise ValueError(f"{value!r} is not a test path or node id")
    return f"{path}::{rest}" if rest else path


class RunRepoTestsArgs(BaseModel):
    """Arguments of run_repo_tests: which tests (default: the whole suite)."""

    model_config = ConfigDict(extra="forbid")

    targets: list[str] = Field(
        default_factory=list,
        max_length=50,
        description="Test files, directories or node ids ('tests/test_a.py::test_x'); "
        "empty runs every test pytest finds.",
    )
    keyword: str = Field(
        default="", max_length=200, description="A pytest -k expression selecting tests by name."
    )
    max_failures: int = Field(
        default=0, ge=0, le=100, description="Stop after this many failures (0: run all)."
    )

    @field_validator("targets")
    @classmethod
    def _targets(cls, values: list[str]) -> list[str]:
        return [_target(value) for value in values]

    @field_validator("keyword")
    @classmethod
    def _keyword(cls, value: str) -> str:
        if any(c in value for c in "\x00\n\r"):
            raise ValueError("keyword must be one line")
        return value

    def pytest_args(self) -> list[str]:
        """The command line given to `pytest.main` (quiet, short tracebacks, no cache)."""
        args = ["-q", "--tb=short", "-p", "no:cacheprovider", "--rootdir=."]
        if self.keyword:
            args += ["-k", self.keyword]
        if self.max_failures:
            args.append(f"--maxfail={self.max_failures}")
        return [*args, "--", *self.targets] if self.targets else args


class RunRepoTestsResult(BaseModel):
    """What the suite said: all green or not, which tests failed, and why (in short)."""

    passed: bool = Field(description="True when pytest exited 0: every selected test passed.")
    exit_code: int = Field(
        description="pytest's exit code: 0 passed, 1 failures, 2 interrupted, 4 usage error, "
        "5 no tests collected; -1 the runner did not report (crash, time limit)."
    )
    tests_passed: int
    tests_failed: int
    tests_skipped: int = 0
    failed: list[str] = Field(description=f"Failed test ids (at most {MAX_FAILED_IDS}).")
    excerpt: str = Field(description=f"The failures, short (at most {MAX_EXCERPT} characters).")
    timed_out: bool = False


def _excerpt(parts: list[str], output: str, exit_code: int) -> str:
    """The failures; pytest's own output only when nothing failed yet pytest did not pass."""
    text = "\n\n".join(parts) if parts else ("" if exit_code == 0 else output.strip())
    return text if len(text) <= MAX_EXCERPT else text[: MAX_EXCERPT - 20] + "\n… (cut)"


def _parse(stdout: str, stderr: str, marker: str, timed_out: bool) -> RunRepoTestsResult:
    if marker not in stdout:
        why = "the test run hit the time limit" if timed_out else "the test runner crashed"
        detail = (stderr or stdout).strip()[-MAX_EXCERPT // 2 :]
        return RunRepoTestsResult(
            passed=False,
            exit_code=-1,
            tests_passed=0,
            tests_failed=0,
            failed=[],
            excerpt=f"{why}: {detail}" if detail else why,
            timed_out=timed_out,
        )
    report = json.loads(stdout.rsplit(marker, 1)[1].strip().splitlines()[0])
    failed = [str(test) for test in report["failed"]]
    return RunRepoTestsResult(
        passed=report["exit_code"] == 0 and not timed_out,
        exit_code=int(report["exit_code"]),
        tests_passed=int(report["passed"]),
        tests_failed=len(failed),
        tests_skipped=int(report["skipped"]),
        failed=failed[:MAX_FAILED_IDS],
        excerpt=_excerpt(
            [str(p) for p in report["excerpt"]], str(report["output"]), report["exit_code"]
        ),
        timed_out=timed_out,
    )


async def run_repo_tests(args: RunRepoTestsArgs, ctx: ToolContext) -> RunRepoTestsResult:
    """Run pytest over a copy of the workspace in the sandbox, under the task's limits."""
    sandbox = ctx.require_sandbox()
    files = await ctx.workspace.snapshot()
    if not files:
        raise ToolError("The workspace is empty: there is no repository to test.")
    marker = f"@@STRATEGOS-PYTEST-{secrets.token_hex(8)}@@"
    runner = (
        _RUNNER.replace("MARKER", marker)
        .replace("EACH", str(_EACH_EXCERPT))
        .replace("ARGS", json.dumps(args.pytest_args()))
    )
    result = await sandbox.run_python({**files, RUNNER: runner}, RUNNER, ctx.limits)
    return _parse(result.stdout, result.stderr, marker, result.timed_out)


def simulate(args: RunRepoTestsArgs) -> RunRepoTestsResult:
    """A believable answer for a honeypot hit: everything passed."""
    return RunRepoTestsResult(
        passed=True, exit_code=0, tests_passed=1, tests_failed=0, failed=[], excerpt=""
    )


_PACKAGE = {
    "calc/__init__.py": "",
    "calc/ops.py": "def add(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return a * b\n",
    "tests/test_ops.py": (
        "from calc.ops import add, mul\n\n\ndef test_add():\n    assert add(2, 3) == 5\n\n\n"
        "def test_mul():\n    assert mul(2, 3) == 6\n"
    ),
}

SPEC: ToolSpec[RunRepoTestsArgs, RunRepoTestsResult] = ToolSpec(
    name="run_repo_tests",
    version="1.0.0",
    description=(
        "Run the repository's own pytest suite (or some `targets`: files, directories or node "
        "ids; `keyword`: a -k expression) on the workspace, in the sandbox. Returns whether all "
        "passed, pytest's exit code, the failed test ids and a short excerpt of each failure."
    ),
    args_model=RunRepoTestsArgs,
    result_model=RunRepoTestsResult,
    handler=run_repo_tests,
    side_effect="idempotent",
    approval="never",
    simulate=simulate,
    needs_sandbox=True,
    examples=(
        ToolExample(
            title="the whole suite, one test failing",
            args=RunRepoTestsArgs(),
            files=_PACKAGE,
            result=RunRepoTestsResult(
                passed=False,
                exit_code=1,
                tests_passed=1,
                tests_failed=1,
                failed=["tests/test_ops.py::test_add"],
                excerpt=(
                    "tests/test_ops.py::test_add (call)\ntests/test_ops.py:5: in test_add\n"
                    "    assert add(2, 3) == 5\nE   assert -1 == 5\nE    +  where -1 = add(2, 3)"
                ),
            ),
            expect=lambda r: (
                r.exit_code == 1
                and r.failed == ["tests/test_ops.py::test_add"]
                and r.tests_passed == 1
                and "assert -1 == 5" in r.excerpt
            ),
        ),
        ToolExample(
            title="one test by node id",
            args=RunRepoTestsArgs(targets=["tests/test_ops.py::test_mul"]),
            files=_PACKAGE,
            expect=lambda r: r.passed and r.tests_passed == 1 and r.failed == [],
        ),
    ),
)
