"""Hidden HumanEval tests run in the real bubblewrap sandbox."""

from __future__ import annotations

import pytest

from eval.checking import ERROR_TAIL_CHARS, run_hidden_tests
from eval.datasets import CodingTask, load_humaneval
from tools.sandbox import LocalSandbox


@pytest.fixture(scope="module")
def sandbox() -> LocalSandbox:
    return LocalSandbox()


@pytest.fixture(scope="module")
def tasks() -> list[CodingTask]:
    return load_humaneval()[:3]


async def test_canonical_solutions_pass(sandbox: LocalSandbox, tasks: list[CodingTask]) -> None:
    for task in tasks:
        assert task.canonical_solution is not None
        result = await run_hidden_tests(task, task.prompt + task.canonical_solution, sandbox)
        assert result.passed, (task.task_id, result.error)
        assert result.error == ""
        assert not result.timed_out


async def test_wrong_solution_fails_without_leaking_the_test(
    sandbox: LocalSandbox, tasks: list[CodingTask]
) -> None:
    task = tasks[0]
    result = await run_hidden_tests(task, task.prompt + "    return False\n", sandbox)
    assert not result.passed
    assert "AssertionError" in result.error
    assert "assert candidate" not in result.error
    assert len(result.error) <= ERROR_TAIL_CHARS


async def test_empty_solution_fails_with_message(
    sandbox: LocalSandbox, tasks: list[CodingTask]
) -> None:
    result = await run_hidden_tests(tasks[0], "", sandbox)
    assert not result.passed
    assert "has_close_elements" in result.error


async def test_syntax_error_is_reported(sandbox: LocalSandbox, tasks: list[CodingTask]) -> None:
    result = await run_hidden_tests(tasks[0], "def has_close_elements(:\n", sandbox)
    assert not result.passed
    assert "SyntaxError" in result.error


async def test_early_exit_cannot_fake_a_pass(
    sandbox: LocalSandbox, tasks: list[CodingTask]
) -> None:
    task = tasks[0]
    code = "import os\ndef has_close_elements(numbers, threshold):\n    os._exit(0)\n"
    result = await run_hidden_tests(task, code, sandbox)
    assert not result.passed
    assert "ended the interpreter early" in result.error


async def test_noisy_solution_still_passes(sandbox: LocalSandbox, tasks: list[CodingTask]) -> None:
    task = tasks[0]
    assert task.canonical_solution is not None
    code = "print('x' * 200_000)\n" + task.prompt + task.canonical_solution
    result = await run_hidden_tests(task, code, sandbox)
    assert result.passed, result.error


async def test_infinite_loop_times_out(sandbox: LocalSandbox, tasks: list[CodingTask]) -> None:
    code = "def has_close_elements(numbers, threshold):\n    while True:\n        pass\n"
    result = await run_hidden_tests(tasks[0], code, sandbox, timeout_s=2)
    assert not result.passed
    assert result.timed_out
    assert "Timed out after 2s" in result.error
    assert result.duration_s < 4
