"""`strategos serve`: one Aegra instance serving the team graph from our `langgraph.json`.

Aegra (`aegra-api`) implements the LangGraph Server API over PostgreSQL and Redis. Several
instances started on different ports with the same database and Redis form one service: a run is
queued in Redis, leased by one worker in PostgreSQL and, if that instance dies, re-queued by the
lease reaper of another instance, which resumes it from the thread's last checkpoint (same run id,
so LangGraph re-enters the run instead of restarting it).

We start Aegra as `python -m uvicorn aegra_api.main:app` in a child process, not with `aegra
serve`, whose own child outlives it. The child runs in its own session so a Ctrl-C on the
terminal reaches only us and is forwarded once (a second signal would make uvicorn skip the
drain); and it gets `PR_SET_PDEATHSIG=SIGKILL`, so killing this process kills the instance, as
a real crash would, instead of leaving an orphan that keeps taking runs.

Recovery timing (the knobs are `STRATEGOS_AEGRA_*`, see `service/settings.py`): a dead
instance's lease expires at most `lease_s` after its last heartbeat, the reaper notices within
`reaper_s`, and a waiting worker pops the re-queued run at once. With 5 s / 2 s / 1 s that is
≤ 6 s plus graph start. The cost: every running run writes its lease every `heartbeat_s`, and an
event loop stalled longer than `lease_s - heartbeat_s` (3 s) loses its lease, so the run is
cancelled there and re-run elsewhere; the tool ledger keeps side effects single, but the work is
repeated. Raise `lease_s` for graphs with long blocking steps.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from pathlib import Path
from types import FrameType
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from service.aegra_leases import install as install_lease_batcher
from service.settings import Settings, get_settings

_PR_SET_PDEATHSIG = 1


def find_config(config: Path | None = None) -> Path:
    """The `langgraph.json` to serve: the given one, else the working directory's, else the repo's.

    The repo fallback lets `strategos serve` work from anywhere in an editable checkout.
    """
    repo_config = Path(__file__).parents[1] / "langgraph.json"
    candidates = [config] if config else [Path("langgraph.json"), repo_config]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    raise FileNotFoundError(f"no langgraph.json at {', '.join(str(c) for c in candidates)}")


def ensure_database(url: str) -> bool:
    """Create the URL's database when it does not exist; True when it was created.

    Aegra migrates its schema on startup but cannot create the database itself.
    """
    params = conninfo_to_dict(url)
    name = str(params.get("dbname") or params.get("user") or "postgres")
    admin = make_conninfo(url, dbname="postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return False
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except psycopg.errors.DuplicateDatabase:
            return False  # another instance created it first
    return True


def aegra_env(
    settings: Settings, *, host: str, port: int, config: Path, base: Mapping[str, str]
) -> dict[str, str]:
    """The child's environment: ours plus Aegra's settings derived from `settings`.

    The graph and the task API in the child read `STRATEGOS_*` too, so the serving database,
    Redis and prefix are written back: the tool ledger then lives in the same shared PostgreSQL
    as the checkpoints (every instance sees every completed side effect), and the rate limits
    and backpressure gauges in the same Redis as the queue (every instance sees every tenant's
    load). Aegra's keys sit under `aegra_redis_prefix()`, apart from the limit store's.
    """
    database_url = settings.serving_database_url()
    redis_url = settings.serving_redis_url()
    prefix = settings.aegra_redis_prefix()
    env = dict(base)
    env.update(
        {
            "AEGRA_CONFIG": str(config),
            "HOST": host,
            "PORT": str(port),
            "DATABASE_URL": database_url,
            "STRATEGOS_DATABASE_URL": database_url,
            "REDIS_BROKER_ENABLED": "true",
            "REDIS_URL": redis_url,
            "STRATEGOS_REDIS_URL": redis_url,
            "STRATEGOS_REDIS_PREFIX": settings.redis_prefix,
            "REDIS_CHANNEL_PREFIX": f"{prefix}run:",
            "WORKER_QUEUE_KEY": f"{prefix}jobs",
            "LEASE_DURATION_SECONDS": str(settings.aegra_lease_s),
            "HEARTBEAT_INTERVAL_SECONDS": str(settings.aegra_heartbeat_s),
            "REAPER_INTERVAL_SECONDS": str(settings.aegra_reaper_s),
            "STUCK_PENDING_THRESHOLD_SECONDS": str(settings.aegra_stuck_pending_s),
            "WORKER_COUNT": str(settings.aegra_workers),
            "N_JOBS_PER_WORKER": str(settings.aegra_jobs_per_worker),
            "WORKER_DRAIN_TIMEOUT": str(settings.aegra_drain_s),
            "BG_JOB_MAX_RETRIES": str(settings.aegra_max_retries),
            "AEGRA_THREAD_TTL": json.dumps(
                {
                    "strategy": "keep_latest",
                    "default_ttl": settings.checkpoint_retention_min,
                    "sweep_interval_minutes": settings.checkpoint_sweep_min,
                }
            ),
            # Nothing leaves the machine: no tracing exporters, no metrics push.
            "OTEL_TARGETS": "",
            "LANGSMITH_TRACING": "false",
            "LANGCHAIN_TRACING_V2": "false",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def aegra_command(host: str, port: int) -> list[str]:
    """Uvicorn in this interpreter, so Aegra imports our installed graphs and pins.

    The app is `aegra_api.main:app` wrapped by `aegra_app` (one writer per thread).
    """
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "service.serve:aegra_app",
        "--host",
        host,
        "--port",
        str(port),
        "--no-access-log",
    ]


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_RUN_PATH = re.compile(r"^/threads/(?P<thread>[^/]+)/runs(?:/stream|/wait)?/?$")
_ACTIVE_RUN_SQL = "SELECT 1 FROM runs WHERE thread_id = %s AND status IN ('pending', 'running')"


def thread_lock_key(thread_id: str) -> int:
    """A signed 64-bit advisory-lock key for the thread (PostgreSQL's `bigint`)."""
    digest = hashlib.blake2b(f"strategos-thread:{thread_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class OneWriterPerThread:
    """Answer 409 to a run submitted to a thread that already has a pending or running run.

    Aegra 0.11.0 accepts `multitask_strategy` but does not act on it: two runs on one thread
    execute at once and fork its checkpoint chain. Until it does, every strategy is treated as
    LangGraph's default, `reject`. The check and Aegra's insert of the new run happen under a
    PostgreSQL advisory lock on the thread, shared by all instances, held until the response
    starts (Aegra has committed the run by then), so two racing submissions cannot both pass.
    A submission that finds the lock taken is itself concurrent with another one: 409 too.
    """

    def __init__(self, app: ASGIApp, database_url: str) -> None:
        self.app = app
        self.database_url = database_url

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Guard run submissions; pass everything else through untouched."""
        match = _RUN_PATH.match(scope.get("path", "")) if scope["type"] == "http" else None
        if match is None or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        thread_id = match.group("thread")
        conn = await psycopg.AsyncConnection.connect(self.database_url, autocommit=True)
        locked = False
        try:
            key = thread_lock_key(thread_id)
            row = await (await conn.execute("SELECT pg_try_advisory_lock(%s)", (key,))).fetchone()
            locked = bool(row and row[0])
            busy = not locked or bool(
                await (await conn.execute(_ACTIVE_RUN_SQL, (thread_id,))).fetchone()
            )
            if busy:
                await _conflict(send, thread_id)
                return

            async def send_then_unlock(message: Message) -> None:
                nonlocal locked
                if message["type"] == "http.response.start" and locked:
                    await conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
                    locked = False
                await send(message)

            await self.app(scope, receive, send_then_unlock)
        finally:
            if locked and not conn.closed:
                await conn.execute("SELECT pg_advisory_unlock(%s)", (thread_lock_key(thread_id),))
            await conn.close()


async def _conflict(send: Send, thread_id: str) -> None:
    body = json.dumps(
        {
            "error": "conflict",
            "message": f"thread {thread_id} already has a run in progress; wait for it to "
            "finish (stream or poll it), then submit again",
            "details": None,
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 409,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


def aegra_app() -> ASGIApp:
    """Uvicorn factory in the child: Aegra's app behind the one-writer-per-thread guard.

    Aegra reads its settings from the environment at import, which `serve` prepared. Its
    per-run lease heartbeat is replaced by one batched renewal loop (`service.aegra_leases`).
    """
    main = importlib.import_module("aegra_api.main")
    if get_settings().aegra_batched_heartbeat:
        install_lease_batcher(importlib.import_module("aegra_api.services.worker_executor"))
    app: ASGIApp = main.app
    return OneWriterPerThread(app, os.environ["DATABASE_URL"])


def _die_with_parent(parent: int) -> Callable[[], None]:
    """Runs in the child before exec: ask the kernel to SIGKILL it when we die."""

    def setup() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # we died before prctl took effect
            os._exit(1)

    return setup


def serve(
    host: str,
    port: int,
    config: Path | None = None,
    settings: Settings | None = None,
) -> int:
    """Run one Aegra instance until it exits or we get SIGTERM/SIGINT; return its exit status.

    Raises `ValueError` when the configured database is not PostgreSQL (see
    `Settings.serving_database_url`).
    """
    if settings is None:
        settings = get_settings()
    config_path = find_config(config)
    ensure_database(settings.serving_database_url())
    env = aegra_env(settings, host=host, port=port, config=config_path, base=os.environ)
    child = subprocess.Popen(
        aegra_command(host, port),
        cwd=config_path.parent,
        env=env,
        start_new_session=True,
        preexec_fn=_die_with_parent(os.getpid()),  # noqa: PLW1509 - no threads yet
    )
    stopping = False

    def forward(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        if stopping:  # a second Ctrl-C: stop waiting for the drain
            child.kill()
            return
        stopping = True
        child.send_signal(signal.SIGTERM)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    grace = settings.aegra_drain_s + 15.0
    deadline: float | None = None
    try:
        while True:
            try:
                return child.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                pass
            if stopping and deadline is None:
                deadline = time.monotonic() + grace
            if deadline is not None and time.monotonic() > deadline:
                child.kill()  # the drain overran its own timeout by far
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if child.poll() is None:
            child.kill()
            child.wait()
