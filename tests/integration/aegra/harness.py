"""Real Aegra instances for tests and benchmarks: fresh database, processes, the crash scenario.

Each instance is `python -m service.cli serve` (what `strategos serve` runs) in its own process
group. Killing that group with SIGKILL is a crash: the wrapper dies at once and the kernel kills
the Aegra child through its parent-death signal, so nothing drains or hands runs back.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg
from langgraph_sdk import get_client

from tests.conftest import cases_reply, coder_reply, review_reply, write_script

REPO = Path(__file__).resolve().parents[3]
PG_URL = os.environ.get("STRATEGOS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("STRATEGOS_TEST_REDIS", "redis://127.0.0.1:6379/0")
GRAPH_ID = "coding_team"
GOAL = "Write add(a, b) returning the sum.\nExample: add(2, 3) == 5"
PLAIN_ADD = "def add(a, b):\n    return a + b\n"
SCRIPTED_CALLS = 3
"""The crash script's plan: one coder, one tester and one reviewer call per task."""
START_TIMEOUT_S = 120.0
TAKEN_PORTS = {2024}


def free_port() -> int:
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in TAKEN_PORTS:
            return port


@contextmanager
def fresh_database(admin_url: str = PG_URL) -> Iterator[str]:
    """A new database on the server of `admin_url` (Aegra cannot use a schema), dropped after.

    By default the machine's PostgreSQL; fault tests pass a throwaway server of their own.
    """
    name = f"strategos_t_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlsplit(admin_url)._replace(path=f"/{name}").geturl()
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def crash_rules() -> list[dict[str, Any]]:
    """One coder, one tester and one reviewer call: a task that is delivered at once."""
    return [
        {"role": "coder", "reply": coder_reply(PLAIN_ADD, "first version")},
        {"role": "tester", "reply": cases_reply(("add(1, 1)", 2), ("add(0, 0)", 0))},
        {"role": "reviewer", "reply": review_reply()},
    ]


def crash_script(path: Path, latency_s: float) -> Path:
    """Three scripted calls per task, each taking `latency_s`, so a kill lands mid-run."""
    return write_script(path, crash_rules(), latency_s=latency_s)


def clean_redis(prefix: str, url: str = REDIS_URL) -> None:
    """Drop the session's Redis keys (queue, pub/sub caches) without touching others."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        for key in client.scan_iter(f"{prefix}*"):
            client.delete(key)
    finally:
        client.close()


@dataclass
class Instance:
    """One `strategos serve` process (wrapper) and its Aegra child."""

    name: str
    port: int
    log: Path
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def child_pid(self) -> int:
        """The uvicorn process: Aegra names its workers `<host>-<pid>-worker-<n>`."""
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        return int(children.split()[0])

    def kill(self) -> None:
        """SIGKILL: no drain, no lease release, no requeue — a crash."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def server_env(
    tmp: Path, database_url: str, script: Path, redis_prefix: str, redis_url: str = REDIS_URL
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "STRATEGOS_"))}
    env.update(
        STRATEGOS_DATA_DIR=str(tmp / "data"),
        STRATEGOS_DATABASE_URL=database_url,
        STRATEGOS_REDIS_URL=redis_url,
        STRATEGOS_REDIS_PREFIX=redis_prefix,
        STRATEGOS_SCRIPTED_MODEL=str(script),
        STRATEGOS_MEMORY_ENABLED="false",
        STRATEGOS_MEMORY_GRAPH_ENABLED="false",
        # The operator's policy: these scripted tasks may deliver without a human.
        STRATEGOS_AUTO_APPROVE='["*"]',
        PYTHONUNBUFFERED="1",
        LOG_LEVEL="WARNING",
    )
    return env


def start(name: str, tmp: Path, env: dict[str, str]) -> Instance:
    port = free_port()
    log = tmp / f"{name}.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "serve", "--port", str(port)],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Instance(name=name, port=port, log=log, proc=proc)


def wait_ready(instance: Instance, timeout_s: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if instance.proc.poll() is not None:
            raise RuntimeError(f"{instance.name} exited:\n{instance.log_tail()}")
        try:
            if httpx.get(f"{instance.url}/health", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"{instance.name} not ready after {timeout_s:.0f}s:\n{instance.log_tail()}")


@contextmanager
def serving(name: str, tmp: Path, env: dict[str, str]) -> Iterator[Instance]:
    """One ready instance, stopped afterwards; its log tail is printed if the body fails."""
    instance = start(name, tmp, env)
    try:
        wait_ready(instance)
        yield instance
    except BaseException:
        print(instance.log_tail(80))
        raise
    finally:
        instance.stop()


@dataclass
class CrashResult:
    """What one kill did: how many runs were orphaned and how fast they came back."""

    tasks: int
    orphaned: int
    recovery_s: float
    """Kill → the last orphaned run claimed by the surviving instance."""
    per_run_recovery_s: list[float]
    total_s: float
    reports: dict[str, dict[str, Any]] = field(default_factory=dict)
    run_status: dict[str, str] = field(default_factory=dict)
    input_checkpoints: dict[str, int] = field(default_factory=dict)
    deliveries: dict[str, int] = field(default_factory=dict)
    rewritten_after_delivery: list[str] = field(default_factory=list)


def _rows(database_url: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        return conn.execute(query, params).fetchall()


def delivered_file(data_dir: Path, thread_id: str, name: str = "solution.py") -> Path:
    """Where a served run delivers: the task's own folder under the instances' data dir."""
    return data_dir / "tasks" / thread_id / "delivered" / name


async def submit(url: str, count: int) -> dict[str, str]:
    """Create `count` threads and one background run each; thread id → run id."""
    runs: dict[str, str] = {}
    async with get_client(url=url) as client:
        for _ in range(count):
            thread = await client.threads.create()
            tid = thread["thread_id"]
            run = await client.runs.create(
                tid,
                GRAPH_ID,
                input={"goal": GOAL},
                context={"approve": "auto"},
            )
            runs[tid] = run["run_id"]
    return runs


def crash_once(
    survivor: Instance,
    victim: Instance,
    database_url: str,
    data_dir: Path,
    tasks: int,
    *,
    min_orphans: int = 1,
    finish_timeout_s: float = 240.0,
) -> CrashResult:
    """Submit `tasks` runs, SIGKILL `victim` once some of its runs are mid-flight, wait for all.

    Recovery is read from Aegra's runs table: the dead instance's runs keep `claimed_by` naming
    its pid until the reaper frees them and a survivor's worker claims them again.
    """
    started = time.monotonic()
    runs = asyncio.run(submit(survivor.url, tasks))
    victim_tag = f"-{victim.child_pid()}-worker-"
    deadline = time.monotonic() + 60
    orphans: list[str] = []
    while time.monotonic() < deadline:
        rows = _rows(
            database_url,
            "SELECT run_id FROM runs WHERE status = 'running' AND claimed_by LIKE %s",
            f"%{victim_tag}%",
        )
        orphans = [str(r[0]) for r in rows if str(r[0]) in runs.values()]
        if len(orphans) >= min_orphans:
            break
        time.sleep(0.05)
    if not orphans:
        raise RuntimeError(f"the victim never ran a task:\n{victim.log_tail()}")
    time.sleep(0.3)  # let the orphans get into their model calls
    rows = _rows(
        database_url,
        "SELECT run_id FROM runs WHERE status = 'running' AND claimed_by LIKE %s",
        f"%{victim_tag}%",
    )
    orphans = [str(r[0]) for r in rows if str(r[0]) in runs.values()]
    victim.kill()
    killed_at = time.monotonic()

    recovered: dict[str, float] = {}
    finish_deadline = killed_at + finish_timeout_s
    status: dict[str, str] = {}
    while time.monotonic() < finish_deadline:
        rows = _rows(
            database_url,
            "SELECT run_id, status, claimed_by FROM runs WHERE run_id = ANY(%s)",
            list(runs.values()),
        )
        now = time.monotonic()
        for run_id, run_status, claimed_by in rows:
            run_id = str(run_id)
            status[run_id] = run_status
            if run_id in orphans and run_id not in recovered:
                if (claimed_by and victim_tag not in claimed_by) or run_status == "success":
                    recovered[run_id] = now - killed_at
        if all(s in ("success", "error", "interrupted") for s in status.values()) and len(
            status
        ) == len(runs):
            break
        time.sleep(0.05)
    total = time.monotonic() - started

    result = CrashResult(
        tasks=tasks,
        orphaned=len(orphans),
        recovery_s=max(recovered.values()) if len(recovered) == len(orphans) else float("inf"),
        per_run_recovery_s=sorted(recovered.values()),
        total_s=total,
        run_status={tid: status.get(rid, "missing") for tid, rid in runs.items()},
    )
    result.reports = asyncio.run(_reports(survivor.url, list(runs)))
    threads = list(runs)
    for tid, n in _rows(
        database_url,
        "SELECT thread_id, count(*) FROM checkpoints WHERE thread_id = ANY(%s) "
        "AND checkpoint_ns = '' AND metadata->>'source' = 'input' GROUP BY thread_id",
        threads,
    ):
        result.input_checkpoints[str(tid)] = int(n)
    for tid, n in _rows(
        database_url,
        "SELECT thread_id, count(*) FROM strategos_events WHERE thread_id = ANY(%s) "
        "AND kind = 'ActivityCompleted' AND data->>'tool' = 'deliver_files' GROUP BY thread_id",
        threads,
    ):
        result.deliveries[str(tid)] = int(n)
    completed = dict(
        _rows(
            database_url,
            "SELECT thread_id, max(created_at) FROM strategos_events WHERE thread_id = ANY(%s) "
            "AND kind = 'ActivityCompleted' AND data->>'tool' = 'deliver_files' "
            "GROUP BY thread_id",
            threads,
        )
    )
    for tid in threads:
        delivered = delivered_file(data_dir, tid)
        done_at = completed.get(tid)
        # The file is replaced atomically (new inode); a repeated delivery would change it
        # after the ledger recorded the first one as completed.
        if delivered.exists() and done_at is not None and delivered.stat().st_ctime > done_at + 1:
            result.rewritten_after_delivery.append(tid)
    return result


async def _reports(url: str, threads: list[str]) -> dict[str, dict[str, Any]]:
    reports: dict[str, dict[str, Any]] = {}
    async with get_client(url=url) as client:
        for tid in threads:
            state = await client.threads.get_state(tid)
            values = state["values"] if isinstance(state["values"], dict) else {}
            reports[tid] = values.get("report") or {}
    return reports


def summary(results: list[CrashResult]) -> dict[str, Any]:
    times = [r.recovery_s for r in results]
    return {
        "kills": len(results),
        "recovery_s_p50": statistics.median(times),
        "recovery_s_min": min(times),
        "recovery_s_max": max(times),
        "orphaned_runs": sum(r.orphaned for r in results),
        "tasks": sum(r.tasks for r in results),
    }


def dump(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
