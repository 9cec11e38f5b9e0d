"""`strategos run --repo`: a repository that cannot be taken is refused before any work."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.conftest import cli_env, write_script
from tests.e2e.cli_support import strategos


def test_a_missing_or_oversized_repository_is_a_usage_error_and_starts_nothing(
    tmp_path: Path,
) -> None:
    env = cli_env(tmp_path, STRATEGOS_REPO_MAX_FILES="2")
    missing = strategos(["run", "fix the bug", "--repo", str(tmp_path / "nope")], env)
    assert missing.returncode == 2, missing.stderr
    assert "is not a directory" in missing.stderr

    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    for name in ("a.py", "b.py", "c.py"):
        (repo / "pkg" / name).write_text("X = 1\n")
    over = strategos(["run", "fix the bug", "--repo", str(repo)], env)
    assert over.returncode == 2, over.stderr
    assert "more than 2 files (the cap)" in over.stderr
    assert "\n" not in over.stderr.strip()  # one line
    tasks_dir = tmp_path / "data" / "tasks"
    assert not tasks_dir.exists() or not any(tasks_dir.iterdir())

    both = strategos(["run", "x", "--repo", str(repo), "--team", "pipeline"], env)
    assert both.returncode == 2 and "leave out --team" in both.stderr


def test_symlinks_in_the_repository_are_not_followed(tmp_path: Path) -> None:
    from service.repos import RepoCaps, ingest_dir

    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "main.py").write_text("print(1)\n")
    (tmp_path / "host_secret").write_text("secret")
    os.symlink(tmp_path / "host_secret", repo / "secret.txt")
    snapshot = ingest_dir(repo, RepoCaps())
    assert "secret" not in "".join(snapshot.files.values())
    assert snapshot.skipped == ["secret.txt"]


PATCH = """\
--- a/pkg/calc.py
+++ b/pkg/calc.py
@@ -1,2 +1,2 @@
 def add(a, b):
-    return a - b
+    return a + b
"""


def _call(name: str, **args: object) -> dict[str, object]:
    return {"name": name, "args": args}


FIXING_RULES = [
    {"role": "react", "when": ['"passed": true'], "tool_calls": [_call("finish", summary="ok")]},
    {"role": "react", "when": ['"action": "modified"'], "tool_calls": [_call("run_repo_tests")]},
    {"role": "react", "when": ["return a - b"], "tool_calls": [_call("apply_patch", patch=PATCH)]},
    {"role": "react", "tool_calls": [_call("read_file", path="pkg/calc.py")]},
]


def test_run_with_a_repository_delivers_a_patch_that_applies_to_it(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    (repo / "tests").mkdir()
    (repo / "pkg" / "__init__.py").write_text("")
    (repo / "pkg" / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    (repo / "tests" / "test_calc.py").write_text(
        "from pkg.calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"
    )
    (repo / ".git").mkdir()
    (repo / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    script = write_script(tmp_path / "script.json", FIXING_RULES)
    env = cli_env(tmp_path, STRATEGOS_SCRIPTED_MODEL=str(script))
    out = tmp_path / "out"
    goal = "tests/test_calc.py fails; fix the package."
    done = strategos(
        ["run", goal, "--repo", str(repo), "--out", str(out), "--approve", "auto"], env
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 files" in done.stdout
    patch = (out / "patch.diff").read_text()
    assert patch.count("diff --git") == 1 and "+    return a + b" in patch
    assert (repo / "pkg" / "calc.py").read_text().endswith("a - b\n")  # the original untouched
    applied = subprocess.run(
        ["patch", "-p1", "--batch", "--quiet"], cwd=repo, input=patch, text=True, check=False
    )
    assert applied.returncode == 0
    assert (repo / "pkg" / "calc.py").read_text() == "def add(a, b):\n    return a + b\n"
