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

Recovery timing (the knobs are `STRATEGOS_AEGRA_*`, defaults below): a dead instance's lease
expires at most `lease_s` after its last heartbeat, the reaper notices within `reaper_s`, and a
waiting worker pops the re-queued run at once. With 5 s / 2 s / 1 s that is ≤ 6 s plus graph
start. The cost: every running run writes its lease every `heartbeat_s`, and an event loop stalled
longer than `lease_s - heartbeat_s` (3 s) loses its lease, so the run is cancelled there and
re-run elsewhere; the tool ledger keeps side effects single, but the work is repeated. Raise
`lease_s` for graphs with long blocking steps.
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
from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/strategos"
"""Aegra's tables, the checkpoints and the tool ledger: a database of their own on the local
server (created when missing), so `DROP DATABASE` resets a deployment without touching others."""

_PR_SET_PDEATHSIG = 1


class ServeSettings(BaseSettings):
    """The serving knobs, read from `STRATEGOS_*` like the rest of the configuration."""

    model_config = SettingsConfigDict(env_prefix="STRATEGOS_", extra="ignore")

    database_url: str = Field(
        default=DEFAULT_DATABASE_URL,
        description="PostgreSQL for Aegra, checkpoints and the ledger (one database, no schema "
        "options: Aegra's asyncpg driver rejects `?options=`).",
    )
    redis_url: str = Field(default="redis://127.0.0.1:6379/0", description="Job queue, pub/sub.")
    redis_prefix: str = Field(
        default="strategos:aegra:",
        min_length=1,
        description="Prefix of every Redis key Aegra uses: instances sharing it share one queue.",
    )
    aegra_lease_s: int = Field(default=5, ge=2, description="Run lease; expiry → re-queue.")
    aegra_heartbeat_s: int = Field(default=2, ge=1, description="Lease renewal period.")
    aegra_reaper_s: int = Field(default=1, ge=1, description="How often expired leases are reaped.")
    aegra_stuck_pending_s: int = Field(
        default=10,
        ge=1,
        description="A pending run absent from the queue this long (popped by a worker that "
        "died before leasing it) is queued again.",
    )
    aegra_workers: int = Field(default=3, ge=0, description="Queue consumers per instance.")
    aegra_jobs_per_worker: int = Field(default=10, ge=1, description="Concurrent runs each.")
    aegra_drain_s: float = Field(
        default=10.0,
        ge=0.0,
        description="On SIGTERM, how long running runs may finish before "
        "they are handed back to the queue for another instance.",
    )
    aegra_max_retries: int = Field(
        default=3, ge=0, description="Times a run is recovered after a crash before it fails."
    )
    checkpoint_retention_min: float = Field(
        default=1440.0,
        gt=0,
        description="Idle threads older than this keep only their latest checkpoint (Aegra's "
        "keep_latest TTL); the ledger's event log is not touched.",
    )
    checkpoint_sweep_min: float = Field(default=10.0, gt=0, description="Retention sweep period.")

    @model_validator(mode="after")
    def _lease_outlives_heartbeats(self) -> ServeSettings:
        """Aegra refuses a lease that does not survive two missed heartbeats; say so early."""
        if self.aegra_lease_s <= 2 * self.aegra_heartbeat_s:
            raise ValueError(
                f"STRATEGOS_AEGRA_LEASE_S ({self.aegra_lease_s}) must exceed twice "
                f"STRATEGOS_AEGRA_HEARTBEAT_S ({self.aegra_heartbeat_s})"
            )
        return self


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
    serve: ServeSettings, *, host: str, port: int, config: Path, base: Mapping[str, str]
) -> dict[str, str]:
    """The child's environment: ours plus Aegra's settings derived from `serve`.

    `STRATEGOS_DATABASE_URL` is set too, so the graph's tool ledger lives in the same shared
    PostgreSQL as the checkpoints: every instance then sees every completed side effect.
    """
    prefix = serve.redis_prefix
    env = dict(base)
    env.update(
        {
            "AEGRA_CONFIG": str(config),
            "HOST": host,
            "PORT": str(port),
            "DATABASE_URL": serve.database_url,
            "STRATEGOS_DATABASE_URL": serve.database_url,
            "REDIS_BROKER_ENABLED": "true",
            "REDIS_URL": serve.redis_url,
            "REDIS_CHANNEL_PREFIX": f"{prefix}run:",
            "WORKER_QUEUE_KEY": f"{prefix}jobs",
            "LEASE_DURATION_SECONDS": str(serve.aegra_lease_s),
            "HEARTBEAT_INTERVAL_SECONDS": str(serve.aegra_heartbeat_s),
            "REAPER_INTERVAL_SECONDS": str(serve.aegra_reaper_s),
            "STUCK_PENDING_THRESHOLD_SECONDS": str(serve.aegra_stuck_pending_s),
            "WORKER_COUNT": str(serve.aegra_workers),
            "N_JOBS_PER_WORKER": str(serve.aegra_jobs_per_worker),
            "WORKER_DRAIN_TIMEOUT": str(serve.aegra_drain_s),
            "BG_JOB_MAX_RETRIES": str(serve.aegra_max_retries),
            "AEGRA_THREAD_TTL": json.dumps(
                {
                    "strategy": "keep_latest",
                    "default_ttl": serve.checkpoint_retention_min,
                    "sweep_interval_minutes": serve.checkpoint_sweep_min,
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

    Aegra reads its settings from the environment at import, which `serve` prepared.
    """
    main = importlib.import_module("aegra_api.main")
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
    settings: ServeSettings | None = None,
) -> int:
    """Run one Aegra instance until it exits or we get SIGTERM/SIGINT; return its exit status."""
    serve_settings = settings or ServeSettings()
    config_path = find_config(config)
    ensure_database(serve_settings.database_url)
    env = aegra_env(serve_settings, host=host, port=port, config=config_path, base=os.environ)
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
    grace = serve_settings.aegra_drain_s + 15.0
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
