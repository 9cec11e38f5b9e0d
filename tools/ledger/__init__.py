"""The exactly-once tool ledger and the task's append-only event log.

A tool call is keyed by `idempotency_key(thread_id, checkpoint_ns, tool_call_id, args)`. The
gateway calls `begin(key, …)` before running a tool:

- no entry yet → the row is inserted as `scheduled` (INSERT … ON CONFLICT DO NOTHING, so of two
  concurrent callers exactly one inserts) and the answer is **run**;
- `completed` or `failed` → the answer is **replay** with the recorded result or error;
- `scheduled` with a live lease → **in_flight**: another worker is running it right now;
- `scheduled` with an expired lease → **in_doubt**: a worker died while running it, so its side
  effect may or may not have happened. Only the caller can decide (an idempotent tool may be run
  again with `reclaim`; a non-idempotent one needs a human).

`complete(key, result)` / `fail(key, error)` move `scheduled` to a final state exactly once.

The same store keeps the task's events (WorkflowStarted, ActivityScheduled, ActivityCompleted,
ApprovalRequested …), append-only (UPDATE and DELETE are refused by a trigger), each with an id
that increases by one per thread in commit order, so `events(thread_id, after_id)` is a
gap-free cursor for streaming and audits.

Backends: `PostgresLedger` (psycopg 3 `AsyncConnectionPool`, autocommit) and `SqliteLedger`
(aiosqlite, the embedded default), both running the statements of `sql.py`; the decisions live
in `base.Ledger`. `open_ledger(url)` picks one from a URL.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from tools.ledger.base import (
    BeginAction,
    BeginOutcome,
    EventDraft,
    EventKind,
    Ledger,
    LedgerConflict,
    LedgerEntry,
    LedgerEvent,
    LedgerState,
    idempotency_key,
)
from tools.ledger.postgres import PostgresLedger
from tools.ledger.sqlite import SqliteLedger

__all__ = [
    "BeginAction",
    "BeginOutcome",
    "EventDraft",
    "EventKind",
    "Ledger",
    "LedgerConflict",
    "LedgerEntry",
    "LedgerEvent",
    "LedgerState",
    "PostgresLedger",
    "SqliteLedger",
    "idempotency_key",
    "open_ledger",
]


async def open_ledger(url: str, *, clock: Callable[[], float] = time.time) -> Ledger:
    """A set-up ledger for `postgresql://…`, `sqlite:///path`, `sqlite://:memory:` or a path."""
    if url.startswith(("postgresql://", "postgres://")):
        ledger: Ledger = await PostgresLedger.from_url(url, clock=clock)
    else:
        path = url.removeprefix("sqlite://")
        path = path.removeprefix("/") if path.startswith("/:memory:") else path
        ledger = SqliteLedger(path, clock=clock)
    await ledger.setup()
    return ledger
