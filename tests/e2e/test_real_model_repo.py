"""`strategos run --repo` with the real local model: a copy is changed, the original never is.

A small package with one failing test is handed over as a repository. Whether the 1.5B model
fixes it is measured in the benchmarks, not asserted; what is asserted is what a user relies on
either way: the repository on disk is untouched, the report states the outcome and the exit
status agrees with it, and a delivered patch applies to the original with `patch -p1` and gives
exactly the delivered files.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, cli_env

pytestmark = [pytest.mark.model, pytest.mark.slow]

PACKAGE = {
    "shop/__init__.py": "",
    "shop/cart.py": (
        "def total(prices):\n"
        '    """The sum of the prices."""\n'
        "    result = 0\n"
        "    for price in prices[1:]:\n"
        "        result += price\n"
        "    return result\n"
    ),
    "tests/test_cart.py": (
        "from shop.cart import total\n\n\ndef test_total():\n    assert total([1, 2, 3]) == 6\n"
    ),
}
GOAL = "The test tests/test_cart.py::test_total fails. Fix shop/cart.py so that it passes."


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def test_a_repository_task_on_the_real_model_leaves_the_original_and_tells_the_truth(
    tmp_path: Path,
) -> None:
    repo = tmp_path / "repo"
    for path, text in PACKAGE.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(text)
    out = tmp_path / "out"
    env = cli_env(tmp_path)
    args = ["run", GOAL, "--repo", str(repo), "--approve", "auto", "--out", str(out)]
    done = _cli([*args, "--task-id", "repo-real", "--max-steps", "7"], env)
    log = done.stdout[-3000:] + done.stderr[-3000:]
    assert "3 files" in done.stdout, log
    assert {p: (repo / p).read_text() for p in PACKAGE} == PACKAGE, "the original changed"
    shown = _cli(["show", "repo-real", "--json"], env)
    report = json.loads(shown.stdout)["report"]
    assert report is not None, f"the task ended without a report:\n{log}"
    assert report["status"] in ("delivered", "not_delivered"), log
    assert (done.returncode == 0) == (report["status"] == "delivered"), log
    print(f"\nrepository task: {report['status']}; agent: {report.get('agent')}")
    if report["status"] != "delivered":
        assert report.get("problem") or report.get("agent"), report  # a stated reason
        return
    copy = tmp_path / "applied"
    shutil.copytree(repo, copy)
    patch = (out / "patch.diff").read_text()
    subprocess.run(["patch", "-p1", "--batch"], cwd=copy, input=patch, text=True, check=True)
    for delivered in (out / "files").rglob("*"):
        if delivered.is_file():
            relative = delivered.relative_to(out / "files")
            assert (copy / relative).read_text() == delivered.read_text()
