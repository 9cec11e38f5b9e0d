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

Nothing the instance starts outlives it, on any exit path. Its helpers (`llama-server`, the
embedded FalkorDB) are stopped when Aegra's lifespan ends; they are tied to the instance by a
parent-death signal (`service.children`), so a killed instance takes them along; and this
process is their subreaper: whatever is left when the instance is gone (a drain that overran
and was killed) is adopted by us and stopped — SIGTERM, then SIGKILL — before we exit.

Recovery timing (the knobs are `STRATEGOS_AEGRA_*`, see `service/settings.py`): a dead
instance's lease expires at most `lease_s` after its last heartbeat, the reaper notices within
`reaper_s`, and a waiting worker pops the re-queued run at once. With 5 s / 2 s / 1 s that is
≤ 6 s plus graph start. The cost: every running run writes its lease every `heartbeat_s`, and an
event loop stalled longer than `lease_s - heartbeat_s` (3 s) loses its lease, so the run is
cancelled there and re-run elsewhere; the tool ledger keeps side effects single, but the work is
repeated. Raise `lease_s` for graphs with long blocking steps.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib
import json
import logging
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

from service.api.aegra_progress import close_progress_log
from service.api.aegra_progress import install as log_progress_at_source
from service.api.outage import outage_aware, outage_response
from service.children import become_subreaper, die_with_parent, stop_children
from service.serving.aegra_leases import close_lease_batcher, guard_reaper
from service.serving.aegra_leases import install as install_lease_batcher
from service.serving.gauges import register as register_gauges
from service.serving.run_hooks import install as hook_runs
from service.settings import Settings, get_settings
from service.tracing import setup_tracing

log = logging.getLogger(__name__)

AEGRA_REDIS_RETRIES = 6
"""Aegra's Redis client retries a command 6 times (0.1 s doubling to 1 s): a Redis restart."""
CONNECT_TIMEOUT_S = 5
"""How long a run submission waits for the database before answering 503."""
HELPER_STOP_S = 10.0
"""How long helpers left behind get between SIGTERM and SIGKILL (FalkorDB saves a snapshot)."""


def find_config(config: Path | None = None) -> Path:
    """The `langgraph.json` to serve: the given one, else the working directory's, else the repo's.

    The repo fallback lets `strategos serve` work from anywhere in an editable checkout.
    """
    repo_config = Path(__file__).parents[2] / "langgraph.json"
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
            "REDIS_RETRY_ATTEMPTS": str(AEGRA_REDIS_RETRIES),
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
            # Agent Protocol v2 (`/threads/{id}/commands`, `/stream/events`) starts and resumes
            # runs without Aegra's `threads.create_run` auth handler, so it would skip
            # `service.api.run_guard` (a command's update/goto, an agent key's answer, host paths
            # in the context). Off: those routes answer 503; clients use the runs API.
            "FF_V2_EVENT_STREAMING": "false",
            # Aegra's /metrics serves the default registry, where `tools.telemetry` counts.
            "ENABLE_PROMETHEUS_METRICS": "true" if settings.metrics else "false",
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
        "service.serving.serve:aegra_app",
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
        try:
            conn = await psycopg.AsyncConnection.connect(
                self.database_url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S
            )
        except psycopg.OperationalError:  # the database is down: 503, not a dropped request
            await outage_response(str(scope.get("path", "")))(scope, receive, send)
            return
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


class StopHelpersAtShutdown:
    """Close connections and stop helper processes once Aegra's lifespan has shut down.

    Aegra's shutdown drains the running jobs first; only then are the instance's helpers
    (`llama-server`, FalkorDB) and pools of no further use. Stopping them here, rather than in
    exit handlers, does not depend on the interpreter exiting cleanly afterwards.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass everything through; run `stop_helpers` before reporting the shutdown done."""
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def send_after_stopping(message: Message) -> None:
            if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                await stop_helpers()
            await send(message)

        await self.app(scope, receive, send_after_stopping)


async def stop_helpers() -> None:
    """Close this instance's pools and stop its FalkorDB and `llama-server` (each if started)."""
    from service import deps
    from service.llm.models import LOCAL_SERVER
    from service.serving.graph_server import stop_embedded

    steps: list[tuple[str, Callable[[], Awaitable[None]]]] = [
        ("progress log", close_progress_log),
        ("lease batcher", close_lease_batcher),
        ("gateways and memory", deps.aclose),
        ("FalkorDB", lambda: asyncio.to_thread(stop_embedded)),
        ("llama-server", lambda: asyncio.to_thread(LOCAL_SERVER.stop)),
    ]
    for name, step in steps:
        try:
            await step()
        except Exception:
            log.warning("could not stop the %s at shutdown", name, exc_info=True)


def aegra_app() -> ASGIApp:
    """Uvicorn factory in the child: Aegra's app behind the one-writer-per-thread guard.

    Aegra reads its settings from the environment at import, which `serve` prepared. Its per-run
    lease heartbeat is replaced by one batched renewal loop and its reaper waits out a database
    outage before reaping (`service.serving.aegra_leases`); progress events are logged where runs
    execute (`service.api.aegra_progress`), inside their task's trace (`service.serving.run_hooks`);
    its catch-all error handlers answer 503 when a
    database or Redis outage caused the error (`service.api.outage`); and its helpers stop with its
    lifespan.
    """
    setup_tracing(get_settings())  # before Aegra's, which sets up nothing with no target
    main = importlib.import_module("aegra_api.main")
    database_url = os.environ["DATABASE_URL"]
    if get_settings().aegra_batched_heartbeat:
        install_lease_batcher(
            importlib.import_module("aegra_api.services.worker_executor"),
            own_connection=get_settings().aegra_lease_own_connection,
        )
    guard_reaper(importlib.import_module("aegra_api.services.lease_reaper"))
    run_executor = importlib.import_module("aegra_api.services.run_executor")
    log_progress_at_source(run_executor, database_url)
    hook_runs(run_executor)  # runs join their task's trace; their steps are counted
    if get_settings().metrics:
        register_gauges(database_url)  # queue depth and dead letters, read at scrape time
    app: Any = main.app
    for exc_type, handler in list(app.exception_handlers.items()):
        if exc_type is Exception or getattr(exc_type, "__name__", "") == "HTTPException":
            app.exception_handlers[exc_type] = outage_aware(handler)
    return OneWriterPerThread(StopHelpersAtShutdown(app), database_url)


def _stop_leftovers(child: subprocess.Popen[bytes]) -> None:
    """Stop what the instance left behind: its process group, then every adopted orphan."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signal.SIGTERM)
    left = stop_children(HELPER_STOP_S)
    if left:
        log.warning("stopped %d helper processes the instance left behind", len(left))


def serve(
    host: str,
    port: int,
    config: Path | None = None,
    settings: Settings | None = None,
) -> int:
    """Run one Aegra instance until it exits or we get SIGTERM/SIGINT; return its exit status.

    On every way out (the instance exits, a signal, an error here) the instance is stopped and
    so is anything it left behind (`_stop_leftovers`). Raises `ValueError` when the configured
    database is not PostgreSQL (see `Settings.serving_database_url`).
    """
    if settings is None:
        settings = get_settings()
    config_path = find_config(config)
    ensure_database(settings.serving_database_url())
    env = aegra_env(settings, host=host, port=port, config=config_path, base=os.environ)
    become_subreaper()
    child: subprocess.Popen[bytes] | None = None
    stopping = False

    def forward(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        if child is not None and stopping:  # a second Ctrl-C: stop waiting for the drain
            child.kill()
        elif child is not None:
            child.send_signal(signal.SIGTERM)
        stopping = True

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        child = subprocess.Popen(
            aegra_command(host, port),
            cwd=config_path.parent,
            env=env,
            start_new_session=True,
            preexec_fn=die_with_parent(os.getpid()),  # noqa: PLW1509 - no threads yet
        )
        if stopping:  # the signal came while the child was being started
            child.send_signal(signal.SIGTERM)
        return _wait(child, lambda: stopping, settings.aegra_drain_s + 15.0)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if child is not None:
            if child.poll() is None:
                child.kill()
                child.wait()
            _stop_leftovers(child)


def _wait(child: subprocess.Popen[bytes], stopping: Callable[[], bool], grace_s: float) -> int:
    """The child's exit status; it is killed if it is still draining `grace_s` after a stop."""
    deadline: float | None = None
    while True:
        try:
            return child.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            pass
        if stopping() and deadline is None:
            deadline = time.monotonic() + grace_s
        if deadline is not None and time.monotonic() > deadline:
            child.kill()  # the drain overran its own timeout by far
