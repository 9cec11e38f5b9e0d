"""run_candidates: run several candidate solutions on the goal's checks and on proposed inputs.

Selection by execution needs, for every candidate, whether it passes the goal's own examples
(ground truth) and what it outputs on inputs the tester proposed (no expected values: candidates
are compared with each other). All of it happens in ONE sandbox run (`tools.candidate_runner`
forks a child per candidate), so K candidates cost one sandbox start, not K. The result is a
pure function of the arguments (the workspace is not read), so a ledgered call replays exactly.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from tools import candidate_runner
from tools.checks import Check, free_names, parse_quietly
from tools.registry import (
    CODE_FORMAT,
    PythonCode,
    ToolContext,
    ToolExample,
    ToolSpec,
    WorkspacePath,
)
from tools.sandbox.base import SandboxLimits

__all__ = [
    "MAX_CANDIDATES",
    "MAX_CHECKS",
    "MAX_INPUTS",
    "CandidateCode",
    "CandidateFile",
    "CandidateResult",
    "CheckResult",
    "RunCandidatesArgs",
    "RunCandidatesResult",
    "SPEC",
    "SpecCheck",
    "run_candidates",
    "runner_workspace",
    "parse_run",
]

MAX_CANDIDATES = 8
MAX_INPUTS = 20
MAX_CHECKS = 32
MAX_TEXT = 300
"""Characters kept of one output (plus a digest when longer)."""
RUNNER = "__strategos_candidates__.py"
_RUNNER_SOURCE = Path(candidate_runner.__file__).read_text(encoding="utf-8")
Origin = Literal["greedy", "sample", "repair"]


def _is_call(text: str) -> str:
    text = text.strip()
    try:
        tree = parse_quietly(text, mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"not a Python expression: {text!r} ({exc.msg})") from exc
    if not isinstance(tree, ast.Expression) or not isinstance(tree.body, ast.Call):
        raise ValueError(f"not a call: {text!r}; give a call such as f([1, 2], 3)")
    return text


InputCall = Annotated[
    str,
    Field(min_length=1, max_length=1000, json_schema_extra={"format": CODE_FORMAT}),
    AfterValidator(_is_call),
]


class CandidateFile(BaseModel):
    """One file of a candidate."""

    model_config = ConfigDict(extra="forbid")

    path: WorkspacePath
    content: PythonCode


class CandidateCode(BaseModel):
    """A candidate solution: its id (echoed in the result), origin and files."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    origin: Origin = "sample"
    files: list[CandidateFile] = Field(min_length=1, max_length=8)

    @model_validator(mode="after")
    def _unique_paths(self) -> Self:
        paths = [f.path for f in self.files]
        if len(set(paths)) != len(paths):
            raise ValueError(f"candidate {self.id}: a path is given twice")
        return self


class SpecCheck(BaseModel):
    """A ground-truth example: `call` must evaluate to `expected` (a literal expression)."""

    model_config = ConfigDict(extra="forbid")

    call: str = Field(min_length=1, max_length=2000, json_schema_extra={"format": CODE_FORMAT})
    expected: str = Field(min_length=1, max_length=2000, json_schema_extra={"format": CODE_FORMAT})

    @model_validator(mode="after")
    def _valid(self) -> Self:
        check = Check(call=self.call, expected=self.expected, source="spec")
        if names := free_names(check.expected, ""):
            raise ValueError(f"expected value {self.expected!r} uses names {sorted(names)}")
        self.call, self.expected = check.call, check.expected
        return self


class RunCandidatesArgs(BaseModel):
    """Arguments of run_candidates."""

    model_config = ConfigDict(extra="forbid")

    candidates: list[CandidateCode] = Field(min_length=1, max_length=MAX_CANDIDATES)
    checks: list[SpecCheck] = Field(default_factory=list, max_length=MAX_CHECKS)
    inputs: list[InputCall] = Field(default_factory=list, max_length=MAX_INPUTS)
    module: WorkspacePath = Field(
        default="solution.py", description="The file of each candidate the calls run against."
    )
    per_call_s: float = Field(default=2.0, gt=0, le=10, description="Time limit of each call.")

    @model_validator(mode="after")
    def _unique_ids(self) -> Self:
        ids = [c.id for c in self.candidates]
        if len(set(ids)) != len(ids):
            raise ValueError("candidate ids must be unique")
        return self


class CheckResult(BaseModel):
    """One spec check of one candidate; `error` says why it failed (a traceback at first)."""

    passed: bool
    actual: str
    error: str = ""


class CandidateResult(BaseModel):
    """One candidate's run; `checks` and `outputs` are empty when `load_error` is set."""

    id: str
    origin: Origin
    size: int = Field(description="Characters of the candidate's files.")
    load_error: str = ""
    checks: list[CheckResult] = Field(default_factory=list)
    outputs: list[str] = Field(
        default_factory=list, description="Canonical output per input, or `raise T: message`."
    )

    @property
    def spec_passed(self) -> int:
        """How many spec checks this candidate passed."""
        return sum(c.passed for c in self.checks)


class RunCandidatesResult(BaseModel):
    """Every candidate's results, with the checks and inputs they refer to, in order."""

    checks: list[SpecCheck]
    inputs: list[str]
    candidates: list[CandidateResult]
    error: str = ""
    timed_out: bool = False


def _run_budget(limits: SandboxLimits, candidates: int) -> tuple[float, int]:
    """(seconds the runner may use, report bytes per candidate) within the sandbox's limits."""
    margin = min(2.0, limits.timeout_s * 0.25)
    share = (limits.max_output_bytes - 1024) // candidates
    return max(limits.timeout_s - margin, 0.1), max(share, 256)


def runner_workspace(args: RunCandidatesArgs, limits: SandboxLimits) -> dict[str, str]:
    """The sandbox files: the runner, its config and candidate i's files under `c<i>/`."""
    deadline_s, share = _run_budget(limits, len(args.candidates))
    files = {RUNNER: _RUNNER_SOURCE}
    for index, candidate in enumerate(args.candidates):
        files.update({f"c{index}/{f.path}": f.content for f in candidate.files})
    config = {
        "module": args.module,
        "per_call_s": args.per_call_s,
        "deadline_s": deadline_s,
        "max_text": MAX_TEXT,
        "share_bytes": share,
        "checks": [[c.call, c.expected] for c in args.checks],
        "inputs": list(args.inputs),
        "dirs": [f"c{i}" for i in range(len(args.candidates))],
    }
    files[candidate_runner.CONFIG] = json.dumps(config)
    return files


def _reports(stdout: str) -> dict[int, dict[str, Any]]:
    found: dict[int, dict[str, Any]] = {}
    for line in stdout.splitlines():
        if line.startswith(candidate_runner.MARKER):
            index, _, body = line.removeprefix(candidate_runner.MARKER).partition(" ")
            try:
                found[int(index)] = json.loads(body)
            except ValueError:
                continue
    return found


def parse_run(
    args: RunCandidatesArgs, stdout: str, stderr: str, exit_code: int, timed_out: bool
) -> RunCandidatesResult:
    """Read the runner's marker lines; a candidate without one gets a load error saying why."""
    reports = _reports(stdout)
    detail = (stderr or stdout).strip()[-1500:] or f"exit code {exit_code}"
    missing = (
        "not run: the whole run timed out" if timed_out else f"not run: the runner failed: {detail}"
    )
    results: list[CandidateResult] = []
    for index, candidate in enumerate(args.candidates):
        size = sum(len(f.content) for f in candidate.files)
        report = reports.get(index) or {"load_error": missing}
        try:
            result = CandidateResult.model_validate(
                {**report, "id": candidate.id, "origin": candidate.origin, "size": size}
            )
        except ValueError:
            result = CandidateResult(
                id=candidate.id, origin=candidate.origin, size=size, load_error=missing
            )
        results.append(result)
    error = "" if len(reports) == len(args.candidates) else missing
    return RunCandidatesResult(
        checks=list(args.checks),
        inputs=list(args.inputs),
        candidates=results,
        error=error,
        timed_out=timed_out,
    )


async def run_candidates(args: RunCandidatesArgs, ctx: ToolContext) -> RunCandidatesResult:
    """Run every candidate on the checks and inputs in one sandbox run."""
    sandbox = ctx.require_sandbox()
    files = runner_workspace(args, ctx.limits)
    run = await sandbox.run_python(files, RUNNER, ctx.limits)
    return parse_run(args, run.stdout, run.stderr, run.exit_code, run.timed_out)


def simulate(args: RunCandidatesArgs) -> RunCandidatesResult:
    """A believable answer for a honeypot hit: every candidate passed and returned None."""
    checks = [CheckResult(passed=True, actual=c.expected) for c in args.checks]
    return RunCandidatesResult(
        checks=list(args.checks),
        inputs=list(args.inputs),
        candidates=[
            CandidateResult(
                id=c.id,
                origin=c.origin,
                size=sum(len(f.content) for f in c.files),
                checks=checks,
                outputs=["None"] * len(args.inputs),
            )
            for c in args.candidates
        ],
    )


def _candidate(cid: str, origin: Origin, code: str) -> CandidateCode:
    return CandidateCode(
        id=cid, origin=origin, files=[CandidateFile(path="solution.py", content=code)]
    )


_ADD = "def add(a, b):\n    return a + b\n"
_SUB = "def add(a, b):\n    return a - b\n"

SPEC: ToolSpec[RunCandidatesArgs, RunCandidatesResult] = ToolSpec(
    name="run_candidates",
    version="1.0.0",
    description=(
        "Run up to 8 candidate solutions in one sandbox run. Each candidate is a set of files "
        "(usually solution.py). Every candidate is checked against `checks` ({call, expected} "
        "Python expressions from the task's own examples) and called on `inputs` (call "
        "expressions only, no expected values). Returns per candidate: pass/fail and the actual "
        "value of each check, its canonical output on each input (`raise T: message` for an "
        "exception or a timeout), or the error that stopped it from loading."
    ),
    args_model=RunCandidatesArgs,
    result_model=RunCandidatesResult,
    handler=run_candidates,
    side_effect="idempotent",
    approval="on_policy",
    simulate=simulate,
    needs_sandbox=True,
    examples=(
        ToolExample(
            title="two candidates, one check, two inputs",
            args=RunCandidatesArgs(
                candidates=[_candidate("a", "greedy", _ADD), _candidate("b", "sample", _SUB)],
                checks=[SpecCheck(call="add(2, 3)", expected="5")],
                inputs=["add(0, 0)", "add(-1, 1)"],
            ),
            result=RunCandidatesResult(
                checks=[SpecCheck(call="add(2, 3)", expected="5")],
                inputs=["add(0, 0)", "add(-1, 1)"],
                candidates=[
                    CandidateResult(
                        id="a",
                        origin="greedy",
                        size=len(_ADD),
                        checks=[CheckResult(passed=True, actual="5")],
                        outputs=["0", "0"],
                    ),
                    CandidateResult(
                        id="b",
                        origin="sample",
                        size=len(_SUB),
                        checks=[
                            CheckResult(
                                passed=False,
                                actual="-1",
                                error="add(2, 3) returned -1, expected 5",
                            )
                        ],
                        outputs=["0", "-2"],
                    ),
                ],
            ),
            expect=lambda r: (
                [c.spec_passed for c in r.candidates] == [1, 0]
                and r.candidates[1].outputs == ["0", "-2"]
            ),
        ),
        ToolExample(
            title="a candidate that does not load and one that raises",
            args=RunCandidatesArgs(
                candidates=[
                    _candidate("broken", "sample", "def half(x):\n    return x // 2\nhalf(\n"),
                    _candidate("strict", "sample", "def half(x):\n    return 1 / (x - x)\n"),
                ],
                inputs=["half(4)"],
            ),
            expect=lambda r: (
                "SyntaxError" in r.candidates[0].load_error
                and r.candidates[1].outputs[0].startswith("raise ZeroDivisionError: ")
            ),
        ),
    ),
)
