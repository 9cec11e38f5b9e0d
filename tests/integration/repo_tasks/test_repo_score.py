"""Scoring repository tasks in the real sandbox: what an agent's files earn, and what they cannot.

The sandbox's python has no pytest; the scorer's own runner must agree with pytest on our
reference content (unsolved before, solved with the reference patch), and must not be fooled by
an agent that edits the failing test, prints a fake report, or loops forever.
"""

from __future__ import annotations

import pytest

from eval.repo_tasks import (
    RepoTask,
    hidden_files,
    load_repo_tasks,
    reference_files,
    score,
    workspace_files,
)
from tools.sandbox import LocalSandbox

TASKS = load_repo_tasks()
BY_ID = {task.id: task for task in TASKS}


@pytest.fixture(scope="module")
def sandbox() -> LocalSandbox:
    return LocalSandbox()


def hidden_count(task: RepoTask) -> int:
    return sum(text.count("\ndef test_") for text in hidden_files(task).values())


@pytest.mark.parametrize("task", TASKS, ids=[task.id for task in TASKS])
async def test_the_repository_as_given_is_unsolved_and_the_reference_solves_it(
    task: RepoTask, sandbox: LocalSandbox
) -> None:
    before = await score(task, workspace_files(task), sandbox)
    assert not before.solved and not before.error, before
    assert before.hidden_failed >= 1
    assert (before.visible_failed >= 1) == (task.kind == "fix"), before

    after = await score(task, reference_files(task), sandbox)
    assert after.solved, after.failures or after.error
    assert after.hidden_passed == hidden_count(task)
    assert after.visible_passed >= 1


async def test_editing_away_the_failing_test_does_not_solve_a_fix(sandbox: LocalSandbox) -> None:
    task = BY_ID["fix_cart_discount"]
    files = workspace_files(task)
    files["tests/test_cart.py"] = "def test_total_with_discount():\n    assert True\n"
    result = await score(task, files, sandbox)
    assert not result.solved
    assert result.visible_failed == 1
    assert any("test_total_with_discount" in failure for failure in result.failures)


async def test_a_printed_fake_report_and_an_early_exit_do_not_pass(sandbox: LocalSandbox) -> None:
    task = BY_ID["fix_cart_discount"]
    files = reference_files(task)
    fake = '[["tests/test_cart.py", "test_total_with_discount", true, ""]]'
    files["shop/__init__.py"] = (
        f"import os\nprint('@@STRATEGOS-REPO-TESTS-0@@' + {fake!r})\nos._exit(0)\n"
    )
    result = await score(task, files, sandbox)
    assert not result.solved
    assert result.error.startswith("the test run exited with code 0 before reporting")


async def test_code_that_never_returns_fails_its_tests_and_the_run_ends(
    sandbox: LocalSandbox,
) -> None:
    task = BY_ID["fix_reorder_level"]
    files = reference_files(task)
    files["inventory/orders.py"] = files["inventory/orders.py"].replace(
        '    """Names of the items to reorder, sorted."""\n',
        '    """Names of the items to reorder, sorted."""\n    while True:\n        pass\n',
    )
    result = await score(task, files, sandbox, per_test_s=1)
    assert not result.solved and not result.error
    assert any("longer than 1 s" in failure for failure in result.failures), result.failures
    assert result.visible_passed >= 1


async def test_a_file_name_outside_the_workspace_is_a_clear_error(sandbox: LocalSandbox) -> None:
    task = BY_ID["fix_slug_spaces"]
    files = {**workspace_files(task), "../escape.py": "x = 1\n"}
    result = await score(task, files, sandbox)
    assert not result.solved
    assert result.error.startswith("the agent's files are unusable:")
    assert "\n" not in result.error
