"""Repository tasks with hidden tests: the committed set, and its scorer in the sandbox.

A task (`eval/datasets/repo_tasks/<id>/`) is a small Python package with its visible tests
(`repo/`), a user's request (`task.json`), tests the agent never sees (`hidden/`) and a
reference solution (`solution.patch`, only for validating the set). An agent gets the goal and
`workspace_files(task)`; `score` runs the task's own visible tests and its hidden tests against
the files the agent ends with. The agent's files are untrusted model output, so they run only in
the sandbox, and the task's test files always come from the dataset: an agent that edits or
deletes a failing test does not make it pass.

The sandbox's interpreter has no pytest, so the tests are plain `test_*` functions with bare
asserts (they run under pytest too) and a small runner in the sandbox calls them one by one.
"""

from __future__ import annotations

import json
import math
import secrets
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tools.sandbox import Sandbox, SandboxLimits
from tools.sandbox.base import InvalidWorkspacePath, validate_workspace_path

__all__ = [
    "DATASET_DIR",
    "RepoScore",
    "RepoTask",
    "RepoTaskError",
    "hidden_files",
    "load_repo_tasks",
    "reference_files",
    "score",
    "scoring_files",
    "visible_tests",
    "workspace_files",
]

DATASET_DIR = Path(__file__).parent / "datasets" / "repo_tasks"
HIDDEN_DIR = "hidden_tests"
RUNNER_FILE = "__strategos_repo_tests__.py"
MAX_FAILURES_KEPT = 20
_SKIPPED_PARTS = frozenset({"__pycache__", ".pytest_cache"})

Kind = Literal["fix", "feature", "refactor"]


class RepoTaskError(ValueError):
    """A task folder that is not a valid repository task (said in one line)."""


class TaskSpec(BaseModel):
    """`task.json`: what the user asks, and how hard we think it is."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[a-z][a-z0-9_]{2,63}$")
    kind: Kind
    goal: str = Field(min_length=10, max_length=2000)
    difficulty: int = Field(ge=1, le=3)


@dataclass(frozen=True)
class RepoTask:
    """One repository task of the committed set."""

    id: str
    kind: Kind
    goal: str
    difficulty: int
    root: Path


def load_repo_tasks(root: Path = DATASET_DIR) -> list[RepoTask]:
    """Every task under `root`, in id order; a malformed task is an error, never skipped."""
    if not root.is_dir():
        raise RepoTaskError(f"no repository task set at {root}")
    return [_load_task(folder) for folder in sorted(root.iterdir()) if folder.is_dir()]


def _load_task(folder: Path) -> RepoTask:
    try:
        spec = TaskSpec.model_validate_json((folder / "task.json").read_text())
    except (OSError, ValidationError) as exc:
        first = str(exc).splitlines()[0]
        raise RepoTaskError(f"{folder.name}/task.json is not a valid task: {first}") from exc
    if spec.id != folder.name:
        raise RepoTaskError(f"{folder.name}/task.json has id {spec.id!r}; use the folder name")
    for part in ("repo", "hidden"):
        if not (folder / part).is_dir():
            raise RepoTaskError(f"{folder.name} has no {part}/ folder")
    return RepoTask(spec.id, spec.kind, spec.goal, spec.difficulty, folder)


def read_tree(folder: Path) -> dict[str, str]:
    """Text files under `folder` by relative POSIX path (caches left out), in path order."""
    files: dict[str, str] = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if path.is_file() and not _SKIPPED_PARTS.intersection(relative.parts):
            if path.suffix != ".pyc":
                files[relative.as_posix()] = path.read_text()
    return files


def workspace_files(task: RepoTask) -> dict[str, str]:
    """The repository as the agent gets it: path → text of every file under `repo/`."""
    return read_tree(task.root / "repo")


def hidden_files(task: RepoTask) -> dict[str, str]:
    """The hidden tests, by their name inside `hidden/` (never shown to agents)."""
    return read_tree(task.root / "hidden")


def reference_files(task: RepoTask) -> dict[str, str]:
    """The repository with the reference `solution.patch` applied (`patch -p1`).

    For validating the set and the scorer only: an agent never sees the patch.
    """
    with tempfile.TemporaryDirectory(prefix="strategos-repo-task-") as scratch:
        folder = Path(scratch)
        for path, text in workspace_files(task).items():
            (folder / path).parent.mkdir(parents=True, exist_ok=True)
            (folder / path).write_text(text)
        patch = (task.root / "solution.patch").read_text()
        done = subprocess.run(
            ["patch", "-p1", "-s", "--no-backup-if-mismatch"],
            input=patch,
            cwd=folder,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RepoTaskError(f"{task.id}/solution.patch does not apply: {done.stdout.strip()}")
        return read_tree(folder)


def visible_tests(task: RepoTask) -> dict[str, str]:
    """The repository's own test files (`tests/test_*.py`), as the dataset has them."""
    return {
        path: text
        for path, text in workspace_files(task).items()
        if path.startswith("tests/") and path.rsplit("/", 1)[-1].startswith("test_")
    }


class RepoScore(BaseModel):
    """What the task's tests said about an agent's files; `solved` means every test passed."""

    model_config = ConfigDict(frozen=True)

    task_id: str
    visible_passed: int = 0
    visible_failed: int = 0
    hidden_passed: int = 0
    hidden_failed: int = 0
    failures: list[str] = Field(default_factory=list, description="Failing tests, with why.")
    error: str = Field(default="", description="Why the tests could not run at all.")

    @property
    def solved(self) -> bool:
        """True when the tests ran, at least one passed, and none failed."""
        ran = self.visible_passed + self.hidden_passed
        failed = self.visible_failed + self.hidden_failed
        return not self.error and ran > 0 and failed == 0


# Runs in the sandbox with its python3 (no pytest there). Each test file is imported on its
# own, each test function runs under an alarm; a file that does not import counts as one
# failure. The code under test writes to /dev/null (fd level) and the report goes to the saved
# stdout after a random marker, so printed output can neither fake nor hide a result.
_RUNNER = r"""
import contextlib, importlib.util, json, os, signal, sys, traceback

MARKER = __MARKER__
FILES = __FILES__
sys.path.insert(0, os.getcwd())
sys.dont_write_bytecode = True
_stdout = os.dup(1)
os.dup2(os.open(os.devnull, os.O_WRONLY), 1)

def _alarm(signum, frame):
    raise TimeoutError("the test took longer than __PER_TEST_S__ s")

def _why(exc):
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        text += " (%s:%s)" % (os.path.basename(frames[-1].filename), frames[-1].lineno)
    return text[-400:] or type(exc).__name__

signal.signal(signal.SIGALRM, _alarm)
results = []
for number, path in enumerate(FILES):
    name = "strategos_test_%d" % number
    try:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        signal.alarm(__PER_TEST_S__)
        spec.loader.exec_module(module)
        signal.alarm(0)
    except BaseException as exc:
        signal.alarm(0)
        results.append([path, "<import>", False, _why(exc)])
        continue
    for attr, func in list(vars(module).items()):
        if not (attr.startswith("test_") and callable(func)):
            continue
        if getattr(func, "__module__", name) != name:
            continue
        try:
            signal.alarm(__PER_TEST_S__)
            func()
            signal.alarm(0)
            results.append([path, attr, True, ""])
        except BaseException as exc:
            signal.alarm(0)
            results.append([path, attr, False, _why(exc)])
sys.stdout.flush()
os.write(_stdout, ("\n" + MARKER + json.dumps(results) + "\n").encode())
"""


def _runner(marker: str, files: list[str], per_test_s: int) -> str:
    return (
        _RUNNER.replace("__MARKER__", repr(marker))
        .replace("__FILES__", repr(files))
        .replace("__PER_TEST_S__", str(per_test_s))
    )


def scoring_files(task: RepoTask, files: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """The workspace the tests run in, and the test files to run in it (visible, then hidden).

    The agent's files come first; the task's own tests and the hidden tests are laid over them,
    so whatever the agent did to a test file, the dataset's version is what runs. Raises
    InvalidWorkspacePath for a file name that would leave the workspace.
    """
    workspace: dict[str, str] = {}
    for path, text in files.items():
        validate_workspace_path(path)
        if not (path == RUNNER_FILE or path.startswith(f"{HIDDEN_DIR}/")):
            workspace[path] = text
    visible = visible_tests(task)
    hidden = {f"{HIDDEN_DIR}/{name}": text for name, text in hidden_files(task).items()}
    workspace.update(visible)
    workspace.update(hidden)
    tests = sorted(visible) + sorted(path for path in hidden if path.endswith(".py"))
    return workspace, tests


async def score(
    task: RepoTask,
    files: Mapping[str, str],
    sandbox: Sandbox,
    *,
    timeout_s: float = 60,
    per_test_s: int = 10,
) -> RepoScore:
    """Run the task's visible and hidden tests on `files` in the sandbox and count the results."""
    try:
        workspace, tests = scoring_files(task, files)
    except InvalidWorkspacePath as exc:
        return RepoScore(task_id=task.id, error=f"the agent's files are unusable: {exc}")
    marker = f"@@STRATEGOS-REPO-TESTS-{secrets.token_hex(16)}@@"
    workspace[RUNNER_FILE] = _runner(marker, tests, per_test_s)
    limits = SandboxLimits(timeout_s=timeout_s, cpu_s=math.ceil(timeout_s) + 1)
    result = await sandbox.run_python(workspace, RUNNER_FILE, limits=limits)
    if marker not in result.stdout:
        why = "timed out" if result.timed_out else f"exited with code {result.exit_code}"
        tail = result.stderr.strip()[-300:]
        return RepoScore(task_id=task.id, error=f"the test run {why} before reporting: {tail}")
    report = result.stdout.rsplit(marker, 1)[1].strip().splitlines()[0]
    return _count(task.id, json.loads(report))


def _count(task_id: str, results: list[list[object]]) -> RepoScore:
    """Tally the runner's `[file, test, passed, why]` rows into a score."""
    counts = {"visible_passed": 0, "visible_failed": 0, "hidden_passed": 0, "hidden_failed": 0}
    failures: list[str] = []
    for path, test, passed, why in results:
        side = "hidden" if str(path).startswith(f"{HIDDEN_DIR}/") else "visible"
        counts[f"{side}_{'passed' if passed else 'failed'}"] += 1
        if not passed and len(failures) < MAX_FAILURES_KEPT:
            failures.append(f"{path}::{test}: {why}")
    return RepoScore(task_id=task_id, failures=failures, **counts)
