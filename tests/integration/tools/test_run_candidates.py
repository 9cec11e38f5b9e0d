"""run_candidates in the real local sandbox (bubblewrap), and selection over its results."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from nodes.selection import (
    Distinction,
    all_agree,
    distinguishing_input,
    needs_question,
    repair_targets,
    select,
)
from tools.builtin.run_candidates import (
    RUNNER,
    RunCandidatesArgs,
    RunCandidatesResult,
    parse_run,
    run_candidates,
    runner_workspace,
)
from tools.registry import ToolContext
from tools.sandbox import LocalSandbox, SandboxLimits
from tools.workspaces import MemoryWorkspace

SQUARE = "def sq(x):\n    return x * x\n"
CANDIDATES: dict[str, str | None] = {
    "right": SQUARE,
    "wrong": "def sq(x):\n    return x + x\n",
    "raises": "def sq(x):\n    if x < 0:\n        raise ValueError('negative')\n"
    "    return x ** 2\n",
    "syntax": "def sq(x):\n    return (x * x\n",
    "import_error": "import not_a_module\n\ndef sq(x):\n    return x * x\n",
    "no_module": None,
    "loops": "def sq(x):\n    while x < 0:\n        pass\n    return x * x\n",
    "exits": "import os\n\ndef sq(x):\n    if x < 0:\n        os._exit(7)\n    return x * x\n",
}
NOISY = {
    "noisy": "import sys\nprint('x' * 200000)\nsys.stderr.write('y' * 200000)\n\n"
    "def sq(x):\n    print(x)\n    return x * x\n",
    "patcher": "import builtins\nbuiltins.abs = lambda v: 42\n\ndef sq(x):\n    return x * x\n",
    "after_patch": "def sq(x):\n    return abs(x) * abs(x)\n",
    "helper": "from helper import mul\n\ndef sq(x):\n    return mul(x, x)\n",
}
CHECKS = [{"call": "sq(2)", "expected": "4"}, {"call": "sq(3)", "expected": "9"}]
INPUTS = ["sq(0)", "sq(-2)", "sq(5)"]


def candidate(cid: str, code: str | None) -> dict[str, Any]:
    files = (
        [{"path": "solution.py", "content": code}]
        if code
        else [{"path": "x.py", "content": "y = 1"}]
    )
    if cid == "helper":
        files.append({"path": "helper.py", "content": "def mul(a, b):\n    return a * b\n"})
    return {"id": cid, "origin": "greedy" if cid == "right" else "sample", "files": files}


def make_args(codes: Mapping[str, str | None], **fields: Any) -> RunCandidatesArgs:
    data = {
        "candidates": [candidate(k, v) for k, v in codes.items()],
        "checks": CHECKS,
        "inputs": INPUTS,
        "per_call_s": 0.5,
        **fields,
    }
    return RunCandidatesArgs.model_validate(data)


@pytest.fixture(scope="module")
def sandbox() -> LocalSandbox:
    return LocalSandbox()


async def call(
    sandbox: LocalSandbox, args: RunCandidatesArgs, limits: SandboxLimits | None = None
) -> RunCandidatesResult:
    ctx = ToolContext(
        workspace=MemoryWorkspace(),
        tenant_id="t",
        task_id="task",
        sandbox=sandbox,
        limits=limits or SandboxLimits(),
    )
    return await run_candidates(args, ctx)


@pytest.fixture(scope="module")
async def mixed(sandbox: LocalSandbox) -> dict[str, Any]:
    result = await call(sandbox, make_args(CANDIDATES))
    assert result.error == "" and not result.timed_out
    return {c.id: c for c in result.candidates} | {"": result}


def test_a_right_candidate_passes_and_reports_its_outputs(mixed: dict[str, Any]) -> None:
    right = mixed["right"]
    assert right.load_error == "" and right.spec_passed == 2
    assert [c.actual for c in right.checks] == ["4", "9"]
    assert right.outputs == ["0", "4", "25"] and right.size == len(SQUARE)


def test_a_wrong_candidate_fails_with_the_actual_value(mixed: dict[str, Any]) -> None:
    wrong = mixed["wrong"]
    assert [c.passed for c in wrong.checks] == [True, False]
    assert wrong.checks[1].actual == "6"
    assert wrong.checks[1].error == "sq(3) returned 6, expected 9"
    assert wrong.outputs == ["0", "-4", "10"]


def test_exceptions_are_outputs(mixed: dict[str, Any]) -> None:
    assert mixed["raises"].spec_passed == 2
    assert mixed["raises"].outputs == ["0", "raise ValueError: negative", "25"]


def test_candidates_that_do_not_load_say_why(mixed: dict[str, Any]) -> None:
    assert "SyntaxError" in mixed["syntax"].load_error
    assert 'File "solution.py", line 2' in mixed["syntax"].load_error
    assert "ModuleNotFoundError: No module named 'not_a_module'" in mixed["import_error"].load_error
    assert 'File "solution.py", line 1, in <module>' in mixed["import_error"].load_error
    assert mixed["no_module"].load_error == "the candidate has no solution.py"
    assert mixed["syntax"].checks == [] and mixed["syntax"].outputs == []


def test_a_timeout_is_an_output_and_the_later_calls_still_run(mixed: dict[str, Any]) -> None:
    assert mixed["loops"].outputs == ["0", "raise TimeoutError: timed out", "25"]


def test_a_process_exit_mid_run_costs_only_the_calls_left(mixed: dict[str, Any]) -> None:
    exits = mixed["exits"]
    assert exits.spec_passed == 2
    ended = "raise SystemExit: the process ended (exit code 7)"
    assert exits.outputs == ["0", ended, ended]


def test_selection_on_a_real_run(mixed: dict[str, Any]) -> None:
    result = mixed[""]
    chosen = select(result)
    assert chosen.winner == "right"  # four behaviours on sq(-2), one each: greedy wins
    assert [c.members for c in chosen.clusters][0] == ("right",)
    assert {c.members for c in chosen.clusters[1:]} == {("raises",), ("loops",), ("exits",)}
    assert needs_question(chosen.clusters)
    raises = next(c for c in chosen.clusters if c.members == ("raises",))
    found = distinguishing_input(chosen.clusters[0], raises)
    assert found == Distinction("sq(-2)", "4", "raise ValueError: negative")
    assert set(chosen.dropped) == {"wrong", "syntax", "import_error", "no_module"}
    assert not all_agree(result)
    targets = repair_targets(result, k=2)
    assert [t.candidate for t in targets] == ["wrong", "no_module"]  # then the shortest code
    assert targets[0].describe().startswith("Failing call: sq(3)\nExpected: 9\nActual: 6")


async def test_the_first_failing_check_carries_the_traceback(sandbox: LocalSandbox) -> None:
    code = "def helper(x):\n    return [1, 2][x]\n\ndef sq(x):\n    return helper(x)\n"
    result = await call(sandbox, make_args({"c": code}, inputs=[]))
    first, second = result.candidates[0].checks
    assert first.actual == "raise IndexError: list index out of range"
    assert first.error.startswith("sq(2) raised IndexError: list index out of range\nTraceback")
    assert 'File "solution.py", line 5, in sq' in first.error
    assert 'File "solution.py", line 2, in helper' in first.error
    assert "\n" not in second.error  # later failures are one line


async def test_print_noise_patches_and_helper_modules_stay_inside_their_candidate(
    sandbox: LocalSandbox,
) -> None:
    result = await call(sandbox, make_args(NOISY))
    outputs = {c.id: (c.load_error, c.outputs) for c in result.candidates}
    assert outputs == {k: ("", ["0", "4", "25"]) for k in NOISY}
    assert all_agree(result)


async def test_equal_values_print_alike_across_candidates(sandbox: LocalSandbox) -> None:
    codes = {
        "sets": "def f(x):\n    return {x, 9, 1}, {'b': 0.1 + 0.2, 'a': x}\n",
        "sets_other_order": "def f(x):\n    return {1, x, 9}, {'a': x, 'b': 0.3}\n",
        "addr": "def f(x):\n    return object()\n",
    }
    result = await call(sandbox, make_args(codes, checks=[], inputs=["f(5)"]))
    texts = [c.outputs[0] for c in result.candidates]
    assert texts[0] == texts[1] == "({1, 5, 9}, {'a': 5, 'b': 0.3})"
    assert texts[2] == "<object object at 0x...>"


async def test_an_endless_import_is_a_load_error(sandbox: LocalSandbox) -> None:
    codes = {"spins": "while True:\n    pass\n", "fine": SQUARE}
    result = await call(sandbox, make_args(codes), SandboxLimits(timeout_s=8))
    spins, fine = result.candidates
    assert spins.load_error == "loading timed out (an infinite loop at import?)"
    assert fine.outputs == ["0", "4", "25"]


async def test_a_slow_candidate_uses_up_only_its_share_of_the_time(sandbox: LocalSandbox) -> None:
    loops = "def sq(x):\n    while True:\n        pass\n"
    inputs = [f"sq({n})" for n in range(20)]
    args = make_args({"slow": loops, "fast": SQUARE}, checks=[], inputs=inputs, per_call_s=10)
    result = await call(sandbox, args, SandboxLimits(timeout_s=6))
    slow, fast = result.candidates
    assert not result.timed_out and result.error == ""
    assert set(slow.outputs) == {"raise TimeoutError: timed out"}
    assert fast.outputs == [str(n * n) for n in range(20)]


async def test_the_report_fits_the_output_limit_at_the_bounds(sandbox: LocalSandbox) -> None:
    big = "def f(x):\n    return [x] * 10000\n"
    codes = {f"c{i}": big + f"# {i}\n" for i in range(8)}
    checks = [{"call": f"f({n})", "expected": "[]"} for n in range(32)]
    inputs = [f"f({n})" for n in range(20)]
    args = make_args(codes, checks=checks, inputs=inputs)
    limits = SandboxLimits(max_output_bytes=32_000)
    raw = await sandbox.run_python(runner_workspace(args, limits), RUNNER, limits)
    assert raw.ok and not raw.output_truncated and len(raw.stdout.encode()) <= 32_000
    result = parse_run(args, raw.stdout, raw.stderr, raw.exit_code, raw.timed_out)
    assert result.error == ""
    for outcome in result.candidates:
        assert len(outcome.checks) == 32 and len(outcome.outputs) == 20
        assert outcome.outputs[1] != outcome.outputs[2]  # clipped, still distinct
    assert len({c.outputs[3] for c in result.candidates}) == 1


async def test_candidate_code_does_not_inherit_the_runners_future_imports(
    sandbox: LocalSandbox,
) -> None:
    code = "def f(x: int) -> bool:\n    return f.__annotations__['x'] is int\n"
    result = await call(sandbox, make_args({"c": code}, checks=[], inputs=["f(1)"]))
    assert result.candidates[0].outputs == ["True"]


async def test_a_returned_objects_own_equality_cannot_break_the_run(sandbox: LocalSandbox) -> None:
    code = (
        "class Odd:\n    def __eq__(self, other):\n        raise RuntimeError('no')\n\n"
        "def sq(x):\n    return Odd()\n"
    )
    result = await call(sandbox, make_args({"odd": code, "right": SQUARE}))
    odd, right = result.candidates
    assert [c.passed for c in odd.checks] == [False, False] and len(odd.outputs) == 3
    assert right.spec_passed == 2


async def test_an_expected_value_that_cannot_be_evaluated_fails_for_everyone(
    sandbox: LocalSandbox,
) -> None:
    checks = [{"call": "sq(2)", "expected": "4"}, {"call": "sq(0)", "expected": "1 // 0"}]
    result = await call(sandbox, make_args({"right": SQUARE}, checks=checks))
    first, second = result.candidates[0].checks
    assert first.passed and not second.passed
    assert second.error.startswith(
        "the expected value 1 // 0 could not be evaluated: ZeroDivisionError: "
    )
