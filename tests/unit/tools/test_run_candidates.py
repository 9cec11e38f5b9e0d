"""run_candidates without a sandbox: argument bounds, workspace layout, report parsing, and the
runner's pure helpers (canonical outputs, clipping, report fitting)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from tests.unit.tools.conftest import ScriptedSandbox
from tools import candidate_runner as runner
from tools.builtin.run_candidates import (
    MAX_CANDIDATES,
    MAX_INPUTS,
    RUNNER,
    RunCandidatesArgs,
    parse_run,
    run_candidates,
    runner_workspace,
)
from tools.registry import ToolContext
from tools.sandbox import SandboxLimits
from tools.workspaces import MemoryWorkspace

ADD = "def add(a, b):\n    return a + b\n"


def candidate(cid: str, code: str = ADD, **extra: Any) -> dict[str, Any]:
    return {"id": cid, "files": [{"path": "solution.py", "content": code}], **extra}


def args(**fields: Any) -> RunCandidatesArgs:
    data: dict[str, Any] = {"candidates": [candidate("a")], **fields}
    return RunCandidatesArgs.model_validate(data)


# -------------------------------------------------------------------------------- arguments
@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"candidates": []}, "at least 1"),
        ({"candidates": [candidate(f"c{i}") for i in range(MAX_CANDIDATES + 1)]}, "at most 8"),
        ({"inputs": [f"add({i}, 0)" for i in range(MAX_INPUTS + 1)]}, "at most 20"),
        ({"inputs": ["add(1, 2) == 3"]}, "not a call"),
        ({"inputs": ["add(1,"]}, "not a Python expression"),
        ({"candidates": [candidate("a"), candidate("a")]}, "unique"),
        ({"candidates": [candidate("bad id")]}, "pattern"),
        ({"checks": [{"call": "add(1, 2)", "expected": "x"}]}, "uses names"),
        ({"checks": [{"call": "add(1, 2", "expected": "3"}]}, "not a Python expression"),
        ({"per_call_s": 0}, "greater than 0"),
        ({"per_call_s": 11}, "less than or equal to 10"),
        ({"surprise": 1}, "Extra inputs"),
    ],
)
def test_arguments_are_bounded_and_validated(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        args(**fields)


def test_a_candidate_may_not_name_a_file_twice() -> None:
    twice = {"id": "a", "files": [{"path": "solution.py", "content": ADD}] * 2}
    with pytest.raises(ValidationError, match="given twice"):
        args(candidates=[twice])


def test_checks_are_stripped() -> None:
    parsed = args(checks=[{"call": " add(1, 2) ", "expected": " 3 "}])
    assert (parsed.checks[0].call, parsed.checks[0].expected) == ("add(1, 2)", "3")


# ------------------------------------------------------------------------------- workspace
def test_each_candidate_gets_its_own_directory_and_the_runner_its_config() -> None:
    two = args(
        candidates=[
            candidate("a"),
            {
                "id": "b",
                "files": [
                    {"path": "solution.py", "content": "x"},
                    {"path": "h.py", "content": "y"},
                ],
            },
        ],
        checks=[{"call": "add(1, 2)", "expected": "3"}],
        inputs=["add(0, 0)"],
        per_call_s=1.5,
    )
    files = runner_workspace(two, SandboxLimits(timeout_s=20, max_output_bytes=64_000))
    assert files["c0/solution.py"] == ADD
    assert (files["c1/solution.py"], files["c1/h.py"]) == ("x", "y")
    assert files[RUNNER].startswith('"""The script `run_candidates` runs inside the sandbox')
    config = json.loads(files[runner.CONFIG])
    assert config["dirs"] == ["c0", "c1"] and config["module"] == "solution.py"
    assert config["checks"] == [["add(1, 2)", "3"]] and config["inputs"] == ["add(0, 0)"]
    assert config["per_call_s"] == 1.5 and config["deadline_s"] == 18.0
    assert config["share_bytes"] == (64_000 - 1024) // 2


# --------------------------------------------------------------------------------- parsing
def line(index: int, report: dict[str, Any]) -> str:
    return f"\n{runner.MARKER}{index} {json.dumps(report)}\n"


def test_parse_run_reads_each_candidates_line() -> None:
    two = args(candidates=[candidate("a", origin="greedy"), candidate("b")], inputs=["add(1, 1)"])
    ok = {"load_error": "", "checks": [], "outputs": ["2"]}
    stdout = "noise" + line(1, ok) + line(0, {"load_error": "boom"})
    result = parse_run(two, stdout, "", 0, False)
    assert [(c.id, c.origin, c.load_error, c.outputs) for c in result.candidates] == [
        ("a", "greedy", "boom", []),
        ("b", "sample", "", ["2"]),
    ]
    assert result.candidates[0].size == len(ADD) and result.error == "" and not result.timed_out


def test_a_candidate_without_a_line_is_reported_as_not_run() -> None:
    two = args(candidates=[candidate("a"), candidate("b")])
    result = parse_run(two, line(0, {"outputs": []}), "", -9, True)
    assert result.candidates[1].load_error == "not run: the whole run timed out"
    assert result.error == "not run: the whole run timed out" and result.timed_out
    crashed = parse_run(two, "", "Traceback: MemoryError", 1, False)
    assert all(
        "the runner failed: Traceback: MemoryError" in c.load_error for c in crashed.candidates
    )


def test_a_garbled_line_does_not_break_the_others() -> None:
    two = args(candidates=[candidate("a"), candidate("b")])
    stdout = f"\n{runner.MARKER}0 {{not json\n" + line(1, {"outputs": []})
    result = parse_run(two, stdout, "", 0, False)
    assert (
        result.candidates[0].load_error.startswith("not run")
        and not result.candidates[1].load_error
    )


async def test_the_handler_runs_the_runner_once_in_the_sandbox() -> None:
    sandbox = ScriptedSandbox(stdout=line(0, {"outputs": ["3"]}))
    ctx = ToolContext(workspace=MemoryWorkspace(), tenant_id="t", task_id="x", sandbox=sandbox)
    result = await run_candidates(args(inputs=["add(1, 2)"]), ctx)
    assert result.candidates[0].outputs == ["3"]
    [(files, command)] = sandbox.calls
    assert command == ["python3", RUNNER] and "c0/solution.py" in files


# ------------------------------------------------------------------------ canonical outputs
@pytest.mark.parametrize(
    ("left", "right"),
    [
        ({3, 1, 2}, {2, 3, 1}),
        ({"b": 1, "a": 2}, {"a": 2, "b": 1}),
        (frozenset({"x", "y"}), frozenset({"y", "x"})),
        (0.1 + 0.2, 0.3),
        (-0.0, 0.0),
        ([{1: {9, 8}}], [{1: {8, 9}}]),
        (object(), object()),  # addresses are masked
    ],
)
def test_equal_values_have_the_same_canonical_text(left: object, right: object) -> None:
    assert runner.canonical(left) == runner.canonical(right)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ((1,), "(1,)"),
        ((), "()"),
        (set(), "set()"),
        (frozenset(), "frozenset()"),
        ([1.0, "a", None, True], "[1.0, 'a', None, True]"),
        (float("nan"), "nan"),
        (float("-inf"), "-inf"),
        (1e100, "1e+100"),
    ],
)
def test_canonical_text_is_still_python(value: object, text: str) -> None:
    assert runner.canonical(value) == text


def test_different_values_keep_different_texts() -> None:
    assert runner.canonical([1, 2]) != runner.canonical((1, 2))
    assert runner.canonical(1) != runner.canonical(1.0)
    assert runner.canonical(0.1) != runner.canonical(0.1000001)


def test_self_referencing_values_terminate() -> None:
    loop: list[object] = [1]
    loop.append(loop)
    assert runner.canonical(loop) == "[1, ...]"


def test_clipping_keeps_distinct_texts_distinct() -> None:
    a, b = "x" * 500 + "a", "x" * 500 + "b"
    assert runner.clip("short", 10) == "short"
    assert runner.clip(a, 300) != runner.clip(b, 300)
    assert runner.clip(a, 300).startswith("x" * 300 + "...<") and len(runner.clip(a, 300)) == 313


def test_an_exception_is_an_output() -> None:
    assert runner.raised(KeyError("k"), 300) == "raise KeyError: 'k'"
    assert runner.raised(StopIteration(), 300) == "raise StopIteration"
    assert (
        runner.raised(ValueError(f"bad {object()}"), 300)
        == "raise ValueError: bad <object object at 0x...>"
    )


def test_same_matches_the_checks_runner() -> None:
    assert runner.same(0.30000000001, 0.3) and runner.same([1, 2], (1, 2))
    assert not runner.same("1", 1) and not runner.same(None, 0.0)


def test_fit_shrinks_a_report_to_its_byte_share() -> None:
    report = {
        "load_error": "",
        "checks": [{"passed": False, "actual": "y" * 300, "error": "e" * 1500}] * 20,
        "outputs": ["z" * 300] * 20,
    }
    fitted = runner.fit(report, 8000)
    assert len(fitted) <= 8000
    small = json.loads(fitted)
    assert len(small["checks"]) == 20 and len(small["outputs"]) == 20
    assert runner.fit({"outputs": ["1"]}, 8000) == json.dumps({"outputs": ["1"]})


def test_report_fills_what_a_killed_candidate_never_reported() -> None:
    config = {"checks": [["f(1)", "1"], ["f(2)", "2"]], "inputs": ["f(3)", "f(4)"]}
    lines: list[dict[str, Any]] = [
        {"loaded": True},
        {"check": 0, "passed": True, "actual": "1", "error": ""},
        {"input": 0, "output": "3"},
    ]
    timed_out = runner._report(lines, "timeout", config)
    assert timed_out["checks"][1] == {
        "passed": False,
        "actual": runner.TIMED_OUT,
        "error": f"f(2): {runner.TIMED_OUT}",
    }
    assert timed_out["outputs"] == ["3", runner.TIMED_OUT]
    died = runner._report(lines, "signal 11", config)
    assert died["outputs"][1] == "raise SystemExit: the process ended (signal 11)"


def test_report_of_a_candidate_that_died_while_loading() -> None:
    config = {"checks": [], "inputs": ["f(1)"]}
    assert runner._report([], "signal 9", config)["load_error"] == (
        "loading failed: the process ended (signal 9)"
    )
    assert runner._report([], "timeout", config)["load_error"] == "loading failed: timed out"
    told = runner._report([{"load_error": "NameError: x"}], "exit code 0", config)
    assert told == {"load_error": "NameError: x", "checks": [], "outputs": []}
