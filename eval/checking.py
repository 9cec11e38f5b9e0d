"""Hidden-test checking: run a task's HumanEval `check(candidate)` against a solution, sandboxed.

The test text stays inside the sandbox: callers get pass/fail and the tail of stderr only, and the
test is compiled under a file name that does not exist, so tracebacks show line numbers but never
the test's source lines.
"""

from __future__ import annotations

import math
import secrets

from pydantic import BaseModel, ConfigDict

from eval.datasets import CodingTask
from tools.sandbox import Sandbox, SandboxLimits, SandboxResult

__all__ = ["ERROR_TAIL_CHARS", "HiddenTestResult", "run_hidden_tests"]

ERROR_TAIL_CHARS = 2_000
SOLUTION_FILE = "solution.py"
CHECK_FILE = "check_hidden.py"

# Runs inside the sandbox with the system python3. Same semantics as HumanEval's concatenated
# program (solution and test share one namespace, then check(entry_point)), but the solution is a
# real module named "solution", so its `if __name__ == "__main__":` block does not run. Output of
# the solution goes to /dev/null (fd level) and success is a random marker on the saved stdout, so
# a solution that exits early or prints a lot cannot fake or hide a pass.
_CHECK_TEMPLATE = """\
import os
import sys

ENTRY_POINT = {entry_point!r}
HIDDEN_TEST = {test!r}
MARKER = {marker!r}

_stdout = os.dup(1)
_null = os.open(os.devnull, os.O_WRONLY)
os.dup2(_null, 1)


def _fail(message):
    sys.stderr.write(message + "\\n")
    sys.stderr.flush()
    os._exit(1)


try:
    import solution
except SystemExit as exc:
    _fail(f"solution.py called exit({{exc.code!r}}) while being imported; remove top-level exits.")
namespace = vars(solution)
if not callable(namespace.get(ENTRY_POINT)):
    _fail(f"solution.py does not define a function named {{ENTRY_POINT!r}} at module level.")
exec(compile(HIDDEN_TEST, "<hidden test>", "exec"), namespace)
try:
    namespace["check"](namespace[ENTRY_POINT])
except SystemExit as exc:
    _fail(f"{{ENTRY_POINT}}() called exit({{exc.code!r}}) during the hidden test.")
sys.stdout.flush()
os.write(_stdout, (MARKER + "\\n").encode())
"""


class HiddenTestResult(BaseModel):
    """Outcome of a hidden test; `error` is a short actionable tail, empty when it passed."""

    model_config = ConfigDict(frozen=True)

    passed: bool
    error: str
    timed_out: bool
    duration_s: float


async def run_hidden_tests(
    task: CodingTask, code: str, sandbox: Sandbox, timeout_s: float = 20
) -> HiddenTestResult:
    """Run `task.test` against `code` (the full solution module) in `sandbox`."""
    marker = f"HIDDEN-TESTS-PASSED-{secrets.token_hex(16)}"
    checker = _CHECK_TEMPLATE.format(entry_point=task.entry_point, test=task.test, marker=marker)
    # CPU limit a little above the wall clock, so a busy loop is reported as a timeout.
    limits = SandboxLimits(timeout_s=timeout_s, cpu_s=math.ceil(timeout_s) + 1)
    result = await sandbox.run_python(
        {SOLUTION_FILE: code, CHECK_FILE: checker}, CHECK_FILE, limits=limits
    )
    passed = result.ok and marker in result.stdout.splitlines()
    return HiddenTestResult(
        passed=passed,
        error="" if passed else _explain(result, timeout_s),
        timed_out=result.timed_out,
        duration_s=result.duration_s,
    )


def _explain(result: SandboxResult, timeout_s: float) -> str:
    """Say why the run failed, followed by as much of the stderr tail as fits."""
    stderr = result.stderr.strip()
    if result.timed_out:
        head = (
            f"Timed out after {timeout_s:g}s (wall clock): the solution is too slow or never "
            "returns."
        )
    elif result.exit_code == 0:
        head = "The hidden test did not finish: the solution ended the interpreter early."
    elif not stderr:
        head = (
            f"Exited with code {result.exit_code} and no error output "
            "(killed by a CPU, memory or file-size limit?)."
        )
    else:
        head = ""
    if not head:
        return stderr[-ERROR_TAIL_CHARS:]
    room = ERROR_TAIL_CHARS - len(head) - 1
    tail = stderr[-room:] if stderr and room > 0 else ""
    return f"{head}\n{tail}".strip()[:ERROR_TAIL_CHARS]
