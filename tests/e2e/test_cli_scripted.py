"""The CLI as a user runs it: subprocesses, a scripted model, PostgreSQL, SIGKILL and resume."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from psycopg import errors

from service.exit_codes import ExitCode
from tests.conftest import REPO, cases_reply, cli_env, coder_reply, review_reply, write_script
from tests.e2e.cli_support import executions, ledger_entries

STRATEGOS = [sys.executable, "-m", "service.cli"]
GOAL = "Write add(a, b) that returns the sum of a and b.\nExample: add(2, 3) == 5"
RIGHT_ADD = "def add(a, b):\n    return a + b\n"
WRONG_ADD = "def add(a, b):\n    return a - b\n"

pytestmark = pytest.mark.slow


def _completed_test_runs(url: str, task_id: str) -> int:
    """Test runs the task's ledger holds as completed (0 before the ledger exists)."""
    sql = (
        "SELECT count(*) FROM strategos_tool_ledger "
        "WHERE thread_id = %s AND tool = 'run_tests' AND state = 'completed'"
    )
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            row = conn.execute(sql, (task_id,)).fetchone()
    except errors.UndefinedTable:
        return 0
    return int(row[0]) if row else 0


def strategos(
    args: list[str], env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*STRATEGOS, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def test_paused_task_prints_the_commands_and_is_approved_later(tmp_path: Path) -> None:
    script = write_script(
        tmp_path / "script.json",
        [
            {"role": "coder", "reply": coder_reply(RIGHT_ADD)},
            {"role": "tester", "reply": cases_reply(("add(1, 1)", 2))},
            {"role": "reviewer", "reply": review_reply()},
        ],
    )
    env = cli_env(tmp_path, STRATEGOS_SCRIPTED_MODEL=str(script))
    out = tmp_path / "out"
    started = strategos(["run", GOAL, "--out", str(out), "--task-id", "demo1"], env)
    assert started.returncode == 10, started.stdout + started.stderr
    assert "strategos approve demo1" in started.stdout
    assert "--reject --comment" in started.stdout
    assert not out.exists()
    # The model's answers streamed into the log: one line per call, no terminal control codes.
    assert re.search(r"coder streamed \d+ tokens: .*return a \+ b", started.stdout), started.stdout
    assert "\x1b" not in started.stdout and "\r" not in started.stdout

    shown = json.loads(strategos(["show", "demo1", "--json"], env).stdout)
    assert shown["status"] == "waiting for approval"
    request = shown["pending_approval"]  # the request, unwrapped from the inbox's shape
    assert request["contents"] == {"solution.py": RIGHT_ADD}
    assert request["failing"] == [] and request["flags"] == []
    assert request["destination"] == str(out)
    assert "approval needed" in started.stdout and "files: solution.py" in started.stdout

    approved = strategos(["approve", "demo1"], env)
    assert approved.returncode == 0, approved.stdout + approved.stderr
    assert (out / "solution.py").read_text() == RIGHT_ADD
    assert "delivered" in approved.stdout and "model calls" in approved.stdout
    report = json.loads((out / "REPORT.json").read_text())
    assert report["tests"]["spec_passed"] == 1 and report["approval"]["approved"] is True
    # Both commands traced the task to the data dir (the default exporter): the nodes, the
    # model calls and the delivery through the gateway.
    spans = [json.loads(line) for line in (tmp_path / "data" / "traces.jsonl").open()]
    names = {span["name"] for span in spans}
    assert {"coder", "tester", "reviewer", "deliver", "tool_call"} <= names, names
    delivered = [s for s in spans if s["attributes"].get("strategos.tool") == "deliver_files"]
    assert [s["attributes"]["strategos.decision"] for s in delivered] == ["executed"]


def test_unknown_task_and_bad_options_fail_clearly(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    missing = strategos(["resume", "nope"], env)
    assert missing.returncode == ExitCode.USAGE and "no task 'nope'" in missing.stderr
    bad = strategos(["run", GOAL, "--approve", "maybe"], env)
    assert bad.returncode == ExitCode.USAGE
    assert "--approve must be ask, auto or deny" in bad.stderr
    unsafe = strategos(["approve", "../etc"], env)
    assert unsafe.returncode == ExitCode.USAGE and "is not a task id" in unsafe.stderr
    for done in (missing, bad, unsafe):
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_killed_task_resumes_from_its_checkpoint_without_rerunning_tests(
    tmp_path: Path, pg_url: str
) -> None:
    # Every model call takes 1.5 s, so the kill lands while the coder works on its repair,
    # after the first test run was checkpointed.
    script = write_script(
        tmp_path / "script.json",
        [
            {"role": "coder", "when": ["add(2, 3) returned -1"], "reply": coder_reply(RIGHT_ADD)},
            {"role": "coder", "reply": coder_reply(WRONG_ADD)},
            {"role": "tester", "reply": cases_reply(("add(1, 1)", 2))},
            {"role": "reviewer", "reply": review_reply()},
        ],
        latency_s=1.5,
    )
    env = cli_env(tmp_path, STRATEGOS_SCRIPTED_MODEL=str(script), STRATEGOS_DATABASE_URL=pg_url)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [*STRATEGOS, "run", GOAL, "--out", str(out), "--approve", "auto", "--task-id", "k1"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not _completed_test_runs(pg_url, "k1"):
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        assert time.monotonic() < deadline, "the first test run never happened"
        time.sleep(0.05)
    time.sleep(0.7)  # the tester's checkpoint is written; the repair's model call is under way
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists(), "the task must not have finished before the kill"

    shown = strategos(["show", "k1", "--json"], env)
    assert json.loads(shown.stdout)["status"].startswith("interrupted before")

    resumed = strategos(["resume", "k1"], env)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert (out / "solution.py").read_text() == RIGHT_ADD
    # The failing and the passing run, each executed once: the first was not repeated.
    assert ledger_entries(env, "k1", "run_tests") == 2
    assert executions(env, "k1", "run_tests") == 2
    report = json.loads((out / "REPORT.json").read_text())
    # 2 coder calls + 1 tester call + 1 reviewer call: nothing before the kill was redone.
    assert report["model_calls"] == 4


def test_on_a_terminal_the_user_rejects_then_approves_inline(tmp_path: Path) -> None:
    documented = 'def add(a, b):\n    """Return a + b."""\n    return a + b\n'
    script = write_script(
        tmp_path / "script.json",
        [
            {"role": "coder", "when": ["add a docstring"], "reply": coder_reply(documented)},
            {"role": "coder", "reply": coder_reply(RIGHT_ADD)},
            {"role": "tester", "reply": cases_reply(("add(1, 1)", 2))},
            {"role": "reviewer", "reply": review_reply()},
        ],
    )
    out = tmp_path / "out"
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [*STRATEGOS, "run", GOAL, "--out", str(out)],
        cwd=REPO,
        env=cli_env(tmp_path, STRATEGOS_SCRIPTED_MODEL=str(script)),
        stdin=follower,
        stdout=follower,
        stderr=follower,
        close_fds=True,
    )
    os.close(follower)
    screen = ""

    def wait_for(text: str, count: int = 1) -> None:
        nonlocal screen
        deadline = time.monotonic() + 60
        while screen.count(text) < count:
            assert time.monotonic() < deadline, f"never saw {text!r}:\n{screen[-2000:]}"
            ready, _, _ = select.select([leader], [], [], 0.5)
            if ready:
                try:
                    screen += os.read(leader, 65536).decode(errors="replace")
                except OSError:
                    break

    wait_for("Approve this delivery?")
    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen)
    assert "return a + b" in shown, "the approver must see the code before answering"
    assert "goal examples 1/1" in shown
    os.write(leader, b"n\r")
    wait_for("What should change?")
    os.write(leader, b"add a docstring\r")
    wait_for("Approve this delivery?", count=2)
    assert not out.exists(), "nothing may be written before the approval"
    os.write(leader, b"y\r")
    wait_for("files delivered")
    assert proc.wait(timeout=30) == 0
    os.close(leader)
    assert (out / "solution.py").read_text() == documented


def test_killed_right_after_delivery_resumes_without_delivering_twice(
    tmp_path: Path, pg_url: str
) -> None:
    script = write_script(
        tmp_path / "script.json",
        [
            {"role": "coder", "reply": coder_reply(RIGHT_ADD)},
            {"role": "tester", "reply": cases_reply(("add(1, 1)", 2))},
            {"role": "reviewer", "reply": review_reply()},
        ],
    )
    counter = tmp_path / "deliveries"
    env = cli_env(
        tmp_path,
        STRATEGOS_SCRIPTED_MODEL=str(script),
        STRATEGOS_DATABASE_URL=pg_url,
        DELIVERY_COUNTER=str(counter),
    )
    out = tmp_path / "out"
    instrumented = [sys.executable, "-m", "tests.e2e.instrumented_cli"]
    killed = subprocess.run(
        [*instrumented, "run", GOAL, "--out", str(out), "--approve", "auto", "--task-id", "d1"],
        cwd=REPO,
        env={**env, "DIE_AFTER_DELIVERY": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    # The files are out, the delivery is recorded, but the graph never checkpointed it.
    assert (out / "solution.py").read_text() == RIGHT_ADD
    assert counter.read_text().count("\n") == 1
    written = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.iterdir()}
    shown = strategos(["show", "d1", "--json"], env)
    assert json.loads(shown.stdout)["status"] == "interrupted before deliver"

    resumed = subprocess.run(
        [*instrumented, "resume", "d1"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "delivered" in resumed.stdout
    # The tool did not run again: one execution, and the very same files (a rewrite would
    # replace each file with a new inode).
    assert counter.read_text().count("\n") == 1
    assert {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.iterdir()} == written
    report = json.loads((out / "REPORT.json").read_text())
    assert report["status"] == "delivered" and report["files"] == ["solution.py"]
