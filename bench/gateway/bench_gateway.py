"""Tool gateway overhead: what validation, policy, honeypot and ledger add to one tool call.

    .venv/bin/python -m bench.gateway.bench_gateway [--calls 2000] [--warmup 200] [--batch 50]
        [--pg-url postgresql://postgres@127.0.0.1:5432/test] [--out bench/gateway/results.json]

Every agent step that uses a tool goes through `ToolGateway.call`, so its fixed cost is paid
on every tool call of every task. To see that cost and nothing else, the tools here are
in-process no-ops (no sandbox, no I/O in the handler) and each case is timed per call with
`time.perf_counter_ns` over `--calls` calls after `--warmup` untimed ones:

- `baseline`: the handler awaited directly with pre-validated arguments (the floor);
- `read_only`: a `read_only` tool through the gateway, with an in-memory event log, so the
  number is the gateway's own Python work (validation, policy, honeypot scan, result check);
- `read_only_pg`: the same with the PostgreSQL event log (read-only calls write no ledger entry,
  but the gateway still appends ActivityScheduled and ActivityCompleted);
- `ledgered_memory`: a `side_effect` tool (approval waived by a `ToolRule`) with an in-memory
  ledger: the ledger's Python-side work without any storage;
- `ledgered_sqlite` / `ledgered_pg`: the same call on the SQLite (temporary file) and
  PostgreSQL ledgers, each call with its own tool call id so every call is claimed and recorded;
- `ledgered_pg_nosync`: as `ledgered_pg` with `synchronous_commit=off` on the connections, to
  split PostgreSQL's share into statements and waiting for WAL flushes (attribution only: the
  ledger must not run like that, a crash could lose a claim);
- `replay_pg`: the same tool call id and arguments again and again after one completed call:
  the recorded result is returned and the handler must not run;
- `pg_select_1` / `pg_insert_1`: one bare statement through the same pool, the floor of a
  ledger read (a round trip) and of a ledger write (a round trip and a commit).

Each row also counts ledger operations per call (each is one SQL statement and one round trip
on the SQL backends), events appended per call (read back from the ledger) and handler runs.

The cases are timed interleaved, `--batch` calls of each in turn, so that the load of other jobs
on a shared machine falls on all rows alike instead of on whichever ran at a bad moment.

PostgreSQL runs in a schema of its own (`search_path` set on the pool's connections), dropped at
the end: the event table is append-only (a trigger refuses DELETE), so rows written to the shared
tables could never be cleaned up, and a fresh schema keeps other jobs' rows out of the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.metadata
import json
import math
import os
import platform
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, Field, JsonValue
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from tools.gateway import CallContext, ToolGateway, ToolObservation
from tools.ledger import (
    EventKind,
    Ledger,
    LedgerEntry,
    LedgerEvent,
    LedgerState,
    PostgresLedger,
    SqliteLedger,
)
from tools.ledger.sql import Query
from tools.policy import Policy, PolicyConfig, ToolRule
from tools.registry import (
    SideEffect,
    ToolContext,
    ToolRegistry,
    ToolSpec,
    WorkspacePath,
    canonical_json,
)
from tools.workspaces import MemoryWorkspace

HERE = Path(__file__).resolve().parent
DEFAULT_PG_URL = os.environ.get("STRATEGOS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
READ_TOOL = "bench_read"
WRITE_TOOL = "bench_write"
RAW_ARGS: dict[str, JsonValue] = {"path": "src/app.py", "text": "print('hello')\n"}
"""What the model sends: a workspace path (so the path rules and honeypot path scan do real
work, as for `read_file`/`write_file`) and a short text."""


# ------------------------------------------------------------------------------------- tools
class ProbeArgs(BaseModel):
    """Arguments shaped like a small file tool's."""

    path: WorkspacePath
    text: str = Field(default="", max_length=10_000)


class ProbeResult(BaseModel):
    """A small result, validated by the gateway like any tool's."""

    path: str
    chars: int


class Probe:
    """A no-op tool handler that counts its runs, so a replay can be shown not to run it."""

    def __init__(self) -> None:
        self.runs = 0

    async def handler(self, args: ProbeArgs, ctx: ToolContext) -> ProbeResult:
        """Do nothing but count and answer."""
        self.runs += 1
        return ProbeResult(path=args.path, chars=len(args.text))


def probe_spec(
    name: str, side_effect: SideEffect, probe: Probe
) -> ToolSpec[ProbeArgs, ProbeResult]:
    """A tool spec around a probe; no sandbox, no examples, no honeypot simulation needed."""
    return ToolSpec(
        name=name,
        version="1.0.0",
        description=f"Benchmark no-op ({side_effect}).",
        args_model=ProbeArgs,
        result_model=ProbeResult,
        handler=probe.handler,
        side_effect=side_effect,
    )


def bench_policy() -> Policy:
    """The default policy, except that the side-effect tool needs no human.

    The default asks for approval before `side_effect` tools; a `ToolRule` waives it for the
    probe so no approver is in the loop and the numbers are the gateway's alone.
    """
    return Policy(PolicyConfig(tools={WRITE_TOOL: ToolRule(require_approval=False)}))


# ------------------------------------------------------------------------------- ledgers
class MemoryLedger(Ledger):
    """A dict-backed ledger: the gateway's ledger logic with no storage behind it.

    It serialises results and events to JSON like the real backends do, so the difference to
    the SQLite and PostgreSQL rows is the storage: driver, round trips and commits.
    """

    def __init__(self) -> None:
        super().__init__()
        self.statements = 0
        self._entries: dict[str, LedgerEntry] = {}
        self._log: dict[str, list[LedgerEvent]] = {}

    @property
    def transactions(self) -> int:
        """Each operation stands alone (the base class's non-atomic pairs)."""
        return self.statements

    async def setup(self) -> None:
        """Nothing to create."""

    async def close(self) -> None:
        """Nothing to release."""

    async def get(self, key: str) -> LedgerEntry | None:
        """The entry for `key`."""
        self.statements += 1
        return self._entries.get(key)

    async def _insert(self, entry: LedgerEntry) -> bool:
        self.statements += 1
        if entry.key in self._entries:
            return False
        self._entries[entry.key] = entry
        return True

    async def _finish(
        self,
        key: str,
        state: LedgerState,
        result: JsonValue,
        error: str | None,
        attempt: int | None,
    ) -> bool:
        self.statements += 1
        entry = self._entries.get(key)
        if entry is None or entry.state != "scheduled":
            return False
        if attempt is not None and entry.attempt != attempt:
            return False
        self._entries[key] = entry.model_copy(
            update={"state": state, "result": result, "error": error, "updated_at": self.clock()}
        )
        return True

    async def _extend(self, key: str, attempt: int, lease_until: float) -> bool:
        self.statements += 1
        entry = self._entries.get(key)
        if entry is None or entry.state != "scheduled" or entry.attempt != attempt:
            return False
        self._entries[key] = entry.model_copy(update={"lease_until": lease_until})
        return True

    async def _take_over(self, key: str, lease_until: float, now: float) -> LedgerEntry | None:
        self.statements += 1
        entry = self._entries.get(key)
        if entry is None or entry.state != "scheduled" or entry.lease_until > now:
            return None
        taken = entry.model_copy(
            update={"lease_until": lease_until, "attempt": entry.attempt + 1, "updated_at": now}
        )
        self._entries[key] = taken
        return taken

    async def append_event(
        self,
        thread_id: str,
        kind: EventKind,
        data: Mapping[str, object] | None = None,
        *,
        key: str | None = None,
    ) -> LedgerEvent:
        """Append to the thread's list."""
        self.statements += 1
        log = self._log.setdefault(thread_id, [])
        event = LedgerEvent(
            thread_id=thread_id,
            id=len(log) + 1,
            kind=kind,
            key=key,
            data=json.loads(canonical_json(dict(data or {}))),
            created_at=self.clock(),
        )
        log.append(event)
        return event

    async def events(
        self,
        thread_id: str,
        after_id: int = 0,
        limit: int = 100,
        *,
        kinds: Sequence[EventKind] | None = None,
        key: str | None = None,
    ) -> list[LedgerEvent]:
        """The thread's events after `after_id`, filtered."""
        self.statements += 1
        found = [
            event
            for event in self._log.get(thread_id, [])
            if event.id > after_id
            and (kinds is None or event.kind in kinds)
            and (key is None or event.key == key)
        ]
        return found[:limit]

    async def last_event_id(self, thread_id: str) -> int:
        """The newest event's id, 0 for none."""
        self.statements += 1
        log = self._log.get(thread_id, [])
        return log[-1].id if log else 0


class CountingSqliteLedger(SqliteLedger):
    """The SQLite ledger, counting statements and transactions (an autocommit statement is one)."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(path)
        self.statements = 0
        self.transactions = 0

    async def _rows(self, sql: str, params: Sequence[Any] | Mapping[str, Any]) -> list[Any]:
        self.statements += 1
        self.transactions += 1
        return await super()._rows(sql, params)

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Query]:
        self.transactions += 1
        async with super()._transaction() as query:
            yield _counting(self, query)


class CountingPostgresLedger(PostgresLedger):
    """The PostgreSQL ledger, counting statements (one `_fetch` call, one round trip each)."""

    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        super().__init__(pool, owns_pool=True)
        self.statements = 0
        self.transactions = 0

    async def _fetch(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        self.statements += 1
        self.transactions += 1
        return await super()._fetch(sql, params)

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Query]:
        self.transactions += 1
        async with super()._transaction() as query:
            yield _counting(self, query)


def _counting(ledger: CountingSqliteLedger | CountingPostgresLedger, query: Query) -> Query:
    """`query`, counting each statement of a transaction on `ledger`."""

    async def counted(sql: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        ledger.statements += 1
        return await query(sql, params)

    return counted


CountingLedger = MemoryLedger | CountingSqliteLedger | CountingPostgresLedger


async def open_postgres(conninfo: str) -> CountingPostgresLedger:
    """A counting ledger with the same pool settings as `PostgresLedger.from_url`."""
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        conninfo,
        min_size=1,
        max_size=10,
        kwargs={"autocommit": True, "prepare_threshold": 0},
        open=False,
    )
    await pool.open(wait=True)
    ledger = CountingPostgresLedger(pool)
    await ledger.setup()
    return ledger


# --------------------------------------------------------------------------- measurement
@dataclass(frozen=True)
class Case:
    """One row of the table."""

    id: str
    label: str
    tool: str | None
    ledger: str
    replay: bool = False
    sql: str | None = None
    """For the PostgreSQL reference rows: one statement sent through the ledger's pool."""


CASES = (
    Case("baseline", "handler awaited directly (no gateway)", None, "none"),
    Case("read_only", "gateway, read_only tool, in-memory event log", READ_TOOL, "memory"),
    Case("read_only_pg", "gateway, read_only tool, PostgreSQL event log", READ_TOOL, "postgresql"),
    Case("ledgered_memory", "gateway, ledgered tool, in-memory ledger", WRITE_TOOL, "memory"),
    Case("ledgered_sqlite", "gateway, ledgered tool, SQLite ledger", WRITE_TOOL, "sqlite"),
    Case("ledgered_pg", "gateway, ledgered tool, PostgreSQL ledger", WRITE_TOOL, "postgresql"),
    Case(
        "ledgered_pg_nosync",
        "same, synchronous_commit=off (attribution only: commits do not wait for the WAL flush)",
        WRITE_TOOL,
        "postgresql_nosync",
    ),
    Case(
        "replay_pg",
        "gateway, replay of a completed call, PostgreSQL",
        WRITE_TOOL,
        "postgresql",
        replay=True,
    ),
    Case(
        "pg_select_1",
        "reference: SELECT 1 through the ledger's pool (one round trip)",
        None,
        "postgresql",
        sql="SELECT 1",
    ),
    Case(
        "pg_insert_1",
        "reference: one autocommitted single-row INSERT (one round trip + one commit)",
        None,
        "postgresql",
        sql="INSERT INTO bench_commit (id, payload) VALUES (%(id)s, %(payload)s)",
    ),
)
REFERENCE_TABLE = "CREATE TABLE IF NOT EXISTS bench_commit (id BIGINT PRIMARY KEY, payload JSONB)"


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (a value that was actually measured)."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summarize(samples_ns: Sequence[int]) -> dict[str, float]:
    """p50/p95/p99/mean/min/max in milliseconds, to the microsecond."""
    ms = [s / 1e6 for s in samples_ns]
    return {
        "p50_ms": round(percentile(ms, 50), 3),
        "p95_ms": round(percentile(ms, 95), 3),
        "p99_ms": round(percentile(ms, 99), 3),
        "mean_ms": round(statistics.fmean(ms), 3),
        "min_ms": round(min(ms), 3),
        "max_ms": round(max(ms), 3),
    }


Call = Callable[[int], Awaitable[object]]
Check = Callable[[object], None]


def expect(replayed: bool) -> Check:
    """A check that every observation succeeded, replayed or not as the case requires."""

    def check(outcome: object) -> None:
        if not isinstance(outcome, ToolObservation):
            raise RuntimeError(f"expected a ToolObservation, got {type(outcome).__name__}")
        if not outcome.ok or outcome.replayed != replayed or outcome.simulated:
            raise RuntimeError(f"unexpected observation: {outcome.model_dump_json()}")

    return check


def expect_result(outcome: object) -> None:
    """The baseline's check: the handler answered."""
    if not isinstance(outcome, ProbeResult):
        raise RuntimeError(f"expected a ProbeResult, got {type(outcome).__name__}")


def expect_nothing(outcome: object) -> None:
    """The reference rows' check: the statement did not raise."""


@dataclass
class Runner:
    """One case, ready to call: its call, its check, and what it has measured so far."""

    case: Case
    call: Call
    check: Check
    probe: Probe | None = None
    ledger: CountingLedger | None = None
    thread_id: str | None = None
    next_index: int = 0
    samples: list[int] = field(default_factory=list)
    statements: int = 0
    transactions: int = 0
    handler_runs: int = 0
    """Handler runs during the timed calls (the probe is shared, so counted per batch)."""
    warmup_handler_runs: int = 0
    events_after_warmup: int = 0

    async def batch(self, count: int, timed: bool) -> None:
        """Make `count` calls, timing each (checks and counters stay outside the timing)."""
        statements = self.ledger.statements if self.ledger is not None else 0
        transactions = self.ledger.transactions if self.ledger is not None else 0
        runs = self.probe.runs if self.probe is not None else 0
        for index in range(self.next_index, self.next_index + count):
            start = time.perf_counter_ns()
            outcome = await self.call(index)
            elapsed = time.perf_counter_ns() - start
            self.check(outcome)
            if timed:
                self.samples.append(elapsed)
        self.next_index += count
        ran = self.probe.runs - runs if self.probe is not None else 0
        if timed:
            if self.ledger is not None:
                self.statements += self.ledger.statements - statements
                self.transactions += self.ledger.transactions - transactions
            self.handler_runs += ran
        else:
            self.warmup_handler_runs += ran

    async def event_count(self) -> int:
        """How many events this case's thread holds."""
        if self.ledger is None or self.thread_id is None:
            return 0
        return len(await self.ledger.events(self.thread_id, 0, 1_000_000))


@dataclass
class Bench:
    """Everything the cases share: the tools, their counters, the ledgers and the run's id."""

    registry: ToolRegistry
    probes: dict[str, Probe]
    ledgers: dict[str, CountingLedger]
    run_id: str
    calls: int
    warmup: int

    async def prepare(self, case: Case) -> Runner:
        """Build a case's call (and, for the replay, make the one call it replays)."""
        if case.sql is not None:
            return await self.reference(case, case.sql)
        if case.tool is None:
            args = ProbeArgs.model_validate(RAW_ARGS)
            tool_ctx = ToolContext(workspace=MemoryWorkspace(), tenant_id="default", task_id="t")
            spec = self.registry.get(READ_TOOL)

            async def direct(_: int) -> object:
                return await spec.handler(args, tool_ctx)

            return Runner(case, direct, expect_result, probe=self.probes[READ_TOOL])

        tool = case.tool
        ledger = self.ledgers[case.ledger]
        gateway = ToolGateway(self.registry, ledger, bench_policy())
        thread_id = f"bench-gateway-{self.run_id}-{case.id}"
        workspace = MemoryWorkspace()
        total = self.warmup + self.calls
        if case.replay:
            seed = CallContext(thread_id=thread_id, tool_call_id="seed", workspace=workspace)
            expect(replayed=False)(await gateway.call(tool, RAW_ARGS, seed))
            contexts = [seed] * total
        else:
            contexts = [
                CallContext(thread_id=thread_id, tool_call_id=f"call-{i}", workspace=workspace)
                for i in range(total)
            ]

        async def through_gateway(index: int) -> object:
            return await gateway.call(tool, RAW_ARGS, contexts[index])

        return Runner(
            case,
            through_gateway,
            expect(replayed=case.replay),
            probe=self.probes[tool],
            ledger=ledger,
            thread_id=thread_id,
        )

    async def reference(self, case: Case, sql: str) -> Runner:
        """One bare statement sent the way the ledger sends it (pool checkout + execute).

        These rows say what a ledger operation costs at the least: a read is one round trip,
        a write adds the commit (a WAL flush, since every ledger statement autocommits).
        """
        ledger = self.ledgers["postgresql"]
        if not isinstance(ledger, CountingPostgresLedger):
            raise TypeError("the PostgreSQL reference rows need the PostgreSQL ledger")
        pool = ledger.pool
        async with pool.connection() as conn:
            await conn.execute(REFERENCE_TABLE)
        payload = Jsonb({"tool": WRITE_TOOL, "args": RAW_ARGS})
        bind = "%(" in sql

        async def statement(index: int) -> object:
            async with pool.connection() as conn:
                await conn.execute(sql, {"id": index, "payload": payload} if bind else None)
            return None

        return Runner(case, statement, expect_nothing)

    async def run(
        self, cases: Sequence[Case], progress: Progress, batch: int
    ) -> list[dict[str, Any]]:
        """Warm every case up, then time them interleaved, `batch` calls at a time.

        On a shared machine the background load changes by the second; round-robin batches
        (in a rotating order) spread it over all rows alike, so rows stay comparable.
        """
        runners = [await self.prepare(case) for case in cases]
        task = progress.add_task("warm-up", total=self.warmup * len(runners))
        for n, runner in enumerate(runners, start=1):
            await runner.batch(self.warmup, timed=False)
            runner.events_after_warmup = await runner.event_count()
            progress.update(task, completed=n * self.warmup, refresh=True)
        gc.collect()
        progress.update(
            task, description="timed", completed=0, total=self.calls * len(runners), refresh=True
        )
        done = 0
        rounds = math.ceil(self.calls / batch)
        for round_no in range(rounds):
            shift = round_no % len(runners)
            for runner in runners[shift:] + runners[:shift]:
                count = min(batch, self.calls - len(runner.samples))
                await runner.batch(count, timed=True)
                done += count
            progress.update(task, completed=done, refresh=True)
        rows = []
        for runner in runners:
            if runner.case.replay and (runner.handler_runs or runner.warmup_handler_runs):
                raise RuntimeError("a replayed call ran its handler")
            rows.append(await self.row(runner))
        return rows

    async def row(self, runner: Runner) -> dict[str, Any]:
        """One result row; per-call counts are averages over the timed calls."""
        case, samples = runner.case, runner.samples
        calls = len(samples)
        events: list[LedgerEvent] | None = None
        if runner.ledger is not None and runner.thread_id is not None:
            logged = await runner.ledger.events(runner.thread_id, 0, 1_000_000)
            events = logged[runner.events_after_warmup :]
        kinds: dict[str, float] = {}
        for event in events or []:
            kinds[event.kind] = kinds.get(event.kind, 0) + 1
        if case.sql is not None:
            ops: float | None = 1.0
            transactions: float | None = 1.0
        elif runner.ledger is None:
            ops = transactions = None
        else:
            ops = runner.statements / calls
            transactions = runner.transactions / calls
        return {
            "id": case.id,
            "case": case.label,
            "tool": case.tool,
            "side_effect": None if case.tool is None else self.registry.get(case.tool).side_effect,
            "sql": case.sql,
            "ledger": case.ledger,
            "calls": calls,
            **summarize(samples),
            "ledger_ops_per_call": ops,
            "ledger_transactions_per_call": transactions,
            "events_per_call": None if events is None else len(events) / calls,
            "events_by_kind_per_call": {k: v / calls for k, v in sorted(kinds.items())},
            "handler_runs": runner.handler_runs,
        }


def add_overhead(rows: list[dict[str, Any]]) -> None:
    """Gateway minus baseline, at p50 and on the mean (a difference of two distributions'
    statistics, not a statistic of per-call differences)."""
    base = next(row for row in rows if row["id"] == "baseline")
    for row in rows:
        gateway = row["sql"] is None  # the reference rows do not go through the gateway
        row["overhead_p50_ms"] = round(row["p50_ms"] - base["p50_ms"], 3) if gateway else None
        row["overhead_mean_ms"] = round(row["mean_ms"] - base["mean_ms"], 3) if gateway else None


def package_versions() -> dict[str, str]:
    """Versions of what sits on the measured path."""
    names = ("pydantic", "pydantic-core", "psycopg", "psycopg-binary", "psycopg-pool", "aiosqlite")
    found: dict[str, str] = {}
    for name in names:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


PG_SETTINGS = ("commit_delay", "fsync", "synchronous_commit", "wal_sync_method")
"""The server settings that decide what a commit waits for."""
SQLITE_SYNC = {"0": "OFF", "1": "NORMAL", "2": "FULL", "3": "EXTRA"}


def cpu_pressure() -> float | None:
    """Linux PSI: the share of the last minute some runnable task waited for a CPU (%).

    A better sign than the load average that other jobs were competing with the benchmark.
    """
    try:
        line = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    fields = dict(item.split("=", 1) for item in line.split()[1:])
    return float(fields["avg60"]) if "avg60" in fields else None


def connection_facts(pg_url: str) -> str:
    """How the ledger reaches PostgreSQL (host only when it is not a socket path)."""
    host = str(conninfo_to_dict(pg_url).get("host") or "")
    where = "unix socket" if not host or host.startswith("/") else f"TCP to {host}"
    return f"{where}; autocommit pool (min 1, max 10), prepare_threshold=0"


async def main_async(
    calls: int, warmup: int, pg_url: str, note: str = "", batch: int = 50
) -> dict[str, Any]:
    """Run every case and return the results document."""
    load_before = os.getloadavg()
    run_id = uuid.uuid4().hex[:10]
    schema = f"bench_gateway_{run_id}"
    probes = {READ_TOOL: Probe(), WRITE_TOOL: Probe()}
    registry = ToolRegistry(
        [
            probe_spec(READ_TOOL, "read_only", probes[READ_TOOL]),
            probe_spec(WRITE_TOOL, "side_effect", probes[WRITE_TOOL]),
        ]
    )
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as admin:
        cursor = await admin.execute("SHOW server_version")
        version_row = await cursor.fetchone()
        server_version = str(version_row[0]) if version_row else "unknown"
        cursor = await admin.execute(
            "SELECT name, setting FROM pg_settings WHERE name = ANY(%s) ORDER BY name",
            (list(PG_SETTINGS),),
        )
        pg_settings = {str(name): str(value) for name, value in await cursor.fetchall()}
        await admin.execute(f'CREATE SCHEMA "{schema}"')
    rows: list[dict[str, Any]] = []
    ledgers: dict[str, CountingLedger] = {"memory": MemoryLedger()}
    sqlite_sync: object = None
    pressure_before = cpu_pressure()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp:
            try:
                sqlite = CountingSqliteLedger(Path(tmp) / "ledger.db")
                ledgers["sqlite"] = sqlite
                await sqlite.setup()
                sqlite_sync = (await sqlite._rows("PRAGMA synchronous", []))[0][0]
                conninfo = make_conninfo(pg_url, options=f"-c search_path={schema}")
                ledgers["postgresql"] = await open_postgres(conninfo)
                ledgers["postgresql_nosync"] = await open_postgres(
                    make_conninfo(
                        pg_url, options=f"-c search_path={schema} -c synchronous_commit=off"
                    )
                )
                progress = Progress(
                    TextColumn("{task.description}"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    console=Console(stderr=True),
                    auto_refresh=False,  # a refresh thread would compete with the timed calls
                    transient=True,
                )
                bench = Bench(registry, probes, ledgers, run_id, calls, warmup)
                with progress:
                    rows = await bench.run(CASES, progress, batch)
            finally:
                for ledger in ledgers.values():
                    await ledger.close()
    finally:
        async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as admin:
            await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    add_overhead(rows)
    return {
        "benchmark": "tool gateway per-call overhead (validate + policy + honeypot + ledger)",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "calls": calls,
        "warmup": warmup,
        "batch": batch,
        "args": RAW_ARGS,
        "machine": {
            "cpus": os.cpu_count(),
            "kernel": platform.release(),
            "python": platform.python_version(),
            "postgres_server": server_version,
            "postgres_connection": connection_facts(pg_url),
            "postgres_settings": pg_settings,
            "sqlite": sqlite3.sqlite_version,
            "sqlite_synchronous": SQLITE_SYNC.get(str(sqlite_sync), str(sqlite_sync)),
            "packages": package_versions(),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
            "cpu_pressure_some_avg60_before": pressure_before,
            "cpu_pressure_some_avg60_after": cpu_pressure(),
            "note": note,
        },
        "results": rows,
    }


def fmt(value: object) -> str:
    """A table cell: '–' for missing, integers without a fraction."""
    if value is None:
        return "–"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(round(value, 2)) if isinstance(value, float) else str(value)


HEADER = (
    "case",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "mean ms",
    "overhead p50 ms",
    "overhead mean ms",
    "ledger ops / call",
    "ledger transactions / call",
    "events / call",
)


def ms(value: float | None) -> str:
    """A duration cell to the microsecond, '–' when it does not apply."""
    return "–" if value is None else f"{value:.3f}"


def cells(row: Mapping[str, Any]) -> list[str]:
    """The table cells of one row."""
    return [
        str(row["id"]),
        f"{row['p50_ms']:.3f}",
        f"{row['p95_ms']:.3f}",
        f"{row['p99_ms']:.3f}",
        f"{row['mean_ms']:.3f}",
        ms(row["overhead_p50_ms"]),
        ms(row["overhead_mean_ms"]),
        fmt(row["ledger_ops_per_call"]),
        fmt(row.get("ledger_transactions_per_call")),
        fmt(row["events_per_call"]),
    ]


def markdown(data: Mapping[str, Any]) -> str:
    """The results as the Markdown table the README and docs/benchmarks.md carry."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(cells(row)) + " |" for row in data["results"]]
    return "\n".join(lines)


def rich_table(data: Mapping[str, Any]) -> Table:
    """The same table for the terminal."""
    table = Table(title=f"tool gateway, {data['calls']} calls per case")
    for name in HEADER:
        table.add_column(name, justify="left" if name == "case" else "right")
    for row in data["results"]:
        table.add_row(*cells(row))
    return table


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the options, run the benchmark, write the JSON and print the tables."""
    parser = argparse.ArgumentParser(description="Tool gateway per-call overhead benchmark")
    parser.add_argument("--calls", type=int, default=2000, help="timed calls per case")
    parser.add_argument("--warmup", type=int, default=None, help="untimed calls first")
    parser.add_argument(
        "--batch", type=int, default=50, help="calls per case per round (cases interleave)"
    )
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="PostgreSQL for the ledger")
    parser.add_argument("--out", type=Path, default=HERE / "results.json")
    parser.add_argument("--note", default="", help="free text stored with the machine facts")
    options = parser.parse_args(argv)
    if options.calls < 1 or options.batch < 1:
        parser.error("--calls and --batch must be at least 1")
    warmup = options.warmup if options.warmup is not None else min(200, options.calls)
    console = Console()
    data = asyncio.run(
        main_async(options.calls, warmup, options.pg_url, options.note, options.batch)
    )
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    console.print(rich_table(data))
    print(markdown(data))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
