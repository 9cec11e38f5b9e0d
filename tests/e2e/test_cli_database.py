"""PostgreSQL going away under a running CLI task: one clear line, and the task resumes.

Each test has a database of its own, so cutting every connection to it (what a server restart
does) or refusing new ones (the server is down) touches nothing else on the machine.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from service.exit_codes import ExitCode
from tests.conftest import PG_URL, cli_env
from tests.e2e.cli_support import (
    FAULTY,
    GOAL,
    RIGHT_ADD,
    add_script,
    executions,
    output,
    pg_database,
    strategos,
)

pytestmark = pytest.mark.slow
__all__ = ["pg_database"]  # the fixture


def _env(tmp_path: Path, url: str) -> dict[str, str]:
    script = add_script(tmp_path / "script.json")
    return cli_env(tmp_path, STRATEGOS_SCRIPTED_MODEL=str(script), STRATEGOS_DATABASE_URL=url)


def _run(task_id: str, out: Path) -> list[str]:
    return ["run", GOAL, "--out", str(out), "--approve", "auto", "--task-id", task_id]


def test_a_database_outage_is_one_line_and_the_task_resumes(
    tmp_path: Path, pg_database: str
) -> None:
    env, out = _env(tmp_path, pg_database), tmp_path / "out"
    outage = {"DB_OUTAGE_AFTER": "coder", "STRATEGOS_DATABASE_WAIT_S": "3"}
    failed = strategos(_run("d1", out), {**env, **outage}, command=FAULTY)
    assert failed.returncode == ExitCode.ERROR, output(failed)
    assert failed.stderr.strip().splitlines() == [
        "error: database connection lost; the task is saved: run `strategos resume d1`"
    ], output(failed)
    assert not out.exists()

    name = pg_database.rsplit("/", 1)[1]
    with psycopg.connect(PG_URL, autocommit=True) as admin:  # the server is back
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    resumed = strategos(["resume", "d1"], env)
    assert resumed.returncode == ExitCode.DELIVERED, output(resumed)
    assert (out / "solution.py").read_text() == RIGHT_ADD
    assert executions(env, "d1", "deliver_files") == 1


def test_a_database_restart_mid_task_is_survived(tmp_path: Path, pg_database: str) -> None:
    env, out = _env(tmp_path, pg_database), tmp_path / "out"
    done = strategos(_run("d2", out), {**env, "DB_RESTART_AFTER": "coder"}, command=FAULTY)
    assert done.returncode == ExitCode.DELIVERED, output(done)
    assert "Traceback" not in done.stderr
    assert (out / "solution.py").read_text() == RIGHT_ADD


def test_a_transient_database_error_in_a_node_is_retried(tmp_path: Path, pg_database: str) -> None:
    env, out = _env(tmp_path, pg_database), tmp_path / "out"
    done = strategos(_run("d3", out), {**env, "LEDGER_FAILS_ONCE": "1"}, command=FAULTY)
    assert done.returncode == ExitCode.DELIVERED, output(done)
    assert (out / "solution.py").read_text() == RIGHT_ADD
    assert executions(env, "d3", "run_tests") == 1
    assert executions(env, "d3", "deliver_files") == 1
