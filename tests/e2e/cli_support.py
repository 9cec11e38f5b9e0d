"""Helpers for the CLI's end-to-end tests: run `strategos`, read its ledger, fresh databases."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from tests.conftest import (
    PG_URL,
    REPO,
    cases_reply,
    cli_env,
    coder_reply,
    review_reply,
    write_script,
)

STRATEGOS = [sys.executable, "-m", "service.cli"]
FAULTY = [sys.executable, "-m", "tests.e2e.faulty_cli"]
GOAL = "Write add(a, b) that returns the sum of a and b.\nExample: add(2, 3) == 5"
RIGHT_ADD = "def add(a, b):\n    return a + b\n"
WRONG_ADD = "def add(a, b):\n    return a - b\n"


def strategos(
    args: list[str],
    env: dict[str, str],
    *,
    command: list[str] | None = None,
    stdin: str | None = None,
    timeout: float = 180,
) -> subprocess.CompletedProcess[str]:
    """Run the CLI to completion (no terminal: approvals pause instead of asking)."""
    return subprocess.run(
        [*(command or STRATEGOS), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        check=False,
    )


def backend_env(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest, **extra: str
) -> dict[str, str]:
    """`cli_env` on SQLite (the default) or, for "postgresql", a fresh PostgreSQL schema."""
    env = cli_env(tmp_path, **extra)
    if backend == "postgresql":
        env["STRATEGOS_DATABASE_URL"] = request.getfixturevalue("pg_url")
    return env


def add_script(path: Path, code: str = RIGHT_ADD, latency_s: float = 0.0) -> Path:
    """The scripted team for GOAL: one coder answer, one tester case, an approving review."""
    return write_script(
        path,
        [
            {"role": "coder", "reply": coder_reply(code)},
            {"role": "tester", "reply": cases_reply(("add(1, 1)", 2))},
            {"role": "reviewer", "reply": review_reply()},
            {"role": "supervisor", "reply": {"next": "deliver", "reason": "no progress"}},
        ],
        latency_s=latency_s,
    )


def output(done: subprocess.CompletedProcess[str]) -> str:
    """Both streams, for assertion messages."""
    return f"exit {done.returncode}\n--- stdout\n{done.stdout[-4000:]}\n--- stderr\n{done.stderr}"


def _ledger_query(env: dict[str, str], sql_pg: str, sql_lite: str, params: tuple[Any, ...]) -> int:
    url = env.get("STRATEGOS_DATABASE_URL")
    if url:
        with psycopg.connect(url, autocommit=True) as conn:
            row = conn.execute(sql_pg, params).fetchone()
    else:
        with sqlite3.connect(Path(env["STRATEGOS_DATA_DIR"]) / "ledger.sqlite") as conn:
            row = conn.execute(sql_lite, params).fetchone()
    return int(row[0]) if row else 0


def ledger_entries(env: dict[str, str], task_id: str, tool: str) -> int:
    """How many calls of `tool` the task's ledger holds (one per distinct call)."""
    pg = "SELECT count(*) FROM strategos_tool_ledger WHERE thread_id = %s AND tool = %s"
    return _ledger_query(env, pg, pg.replace("%s", "?"), (task_id, tool))


def executions(env: dict[str, str], task_id: str, tool: str) -> int:
    """How many times `tool` really ran for the task (a ledger replay schedules nothing)."""
    pg = (
        "SELECT count(*) FROM strategos_events WHERE thread_id = %s "
        "AND kind = 'ActivityScheduled' AND data->>'tool' = %s"
    )
    lite = (
        "SELECT count(*) FROM strategos_events WHERE thread_id = ? "
        "AND kind = 'ActivityScheduled' AND json_extract(data, '$.tool') = ?"
    )
    return _ledger_query(env, pg, lite, (task_id, tool))


def report_of(out: Path) -> dict[str, Any]:
    """The delivered REPORT.json."""
    report: dict[str, Any] = json.loads((out / "REPORT.json").read_text())
    return report


def with_database(url: str, name: str) -> str:
    """`url` pointing at database `name` (same server, user and options)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}", query=""))


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A fresh database of its own (not a schema): a test may cut every connection to it."""
    name = f"t_cli_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(PG_URL, name)
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
