"""The repository task set is sound: every task fails as stated and its reference solves it.

For each task, on a copy of its repository: a fix task fails one of its visible tests and the
others start green; every task fails its hidden tests before the change; its reference
`solution.patch` applies with `patch -p1`, touches no test, and makes visible and hidden tests
pass. This validates our own committed content, so pytest runs in subprocesses of this
interpreter (no sandbox needed); agents' files are scored in the sandbox (`eval.repo_tasks`).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from eval.repo_tasks import RepoTask, hidden_files, load_repo_tasks, workspace_files

TASKS = load_repo_tasks()
OUTCOME = re.compile(r"^(PASSED|FAILED|ERROR) (\S+?)(?:::(\S+))?(?: - .*)?$", re.MULTILINE)


def pytest_outcomes(folder: Path, *targets: str) -> list[tuple[str, str]]:
    """`(outcome, test id)` of every test pytest ran (collection errors as `ERROR file`)."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider"]
        + ["--continue-on-collection-errors", *targets],
        cwd=folder,
        env={**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    found = [(m[1], m[2] + (f"::{m[3]}" if m[3] else "")) for m in OUTCOME.finditer(done.stdout)]
    assert found, done.stdout[-2000:] + done.stderr[-2000:]
    return found


def lay_out(task: RepoTask, folder: Path) -> None:
    """The task's repository with its hidden tests in `hidden_tests/`, written to `folder`."""
    for path, text in workspace_files(task).items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_text(text)
    (folder / "hidden_tests").mkdir()
    for name, text in hidden_files(task).items():
        (folder / "hidden_tests" / name).write_text(text)


def test_the_set_has_the_agreed_mix() -> None:
    assert len(TASKS) >= 12
    kinds = Counter(task.kind for task in TASKS)
    assert kinds["fix"] >= 5 and kinds["feature"] >= 4 and kinds["refactor"] >= 3, kinds
    assert {task.difficulty for task in TASKS} == {1, 2, 3}
    for task in TASKS:
        files = workspace_files(task)
        modules = [p for p in files if p.endswith(".py") and not p.startswith("tests/")]
        lines = sum(text.count("\n") for path, text in files.items() if path.endswith(".py"))
        assert 2 <= len([m for m in modules if not m.endswith("__init__.py")]) <= 5, task.id
        assert 40 <= lines <= 200, (task.id, lines)
        assert any(p.startswith("tests/test_") for p in files), task.id
        assert hidden_files(task), task.id


@pytest.mark.parametrize("task", TASKS, ids=[task.id for task in TASKS])
def test_the_task_fails_as_stated_and_its_reference_solves_it(
    task: RepoTask, tmp_path: Path
) -> None:
    before, after = tmp_path / "before", tmp_path / "after"
    before.mkdir()
    lay_out(task, before)
    shutil.copytree(before, after)

    outcomes = pytest_outcomes(before, "tests", "hidden_tests")
    visible_failed = [t for o, t in outcomes if o != "PASSED" and t.startswith("tests/")]
    hidden_failed = [t for o, t in outcomes if o != "PASSED" and t.startswith("hidden_tests/")]
    if task.kind == "fix":
        assert visible_failed, f"{task.id}: no visible test fails before the fix"
    else:
        assert not visible_failed, f"{task.id}: visible tests must start green: {visible_failed}"
    assert hidden_failed, f"{task.id}: the hidden tests pass without any change"

    patch = (task.root / "solution.patch").read_text()
    touched = re.findall(r"^\+\+\+ b/(\S+)", patch, re.MULTILINE)
    assert touched and not [p for p in touched if p.startswith("tests/")], touched
    subprocess.run(["patch", "-p1", "-s"], input=patch, cwd=after, text=True, check=True)
    outcomes = pytest_outcomes(after, "tests", "hidden_tests")
    assert {o for o, _ in outcomes} == {"PASSED"}, [t for o, t in outcomes if o != "PASSED"]
