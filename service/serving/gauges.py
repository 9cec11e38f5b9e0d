"""Gauges of the shared database, read at scrape time: the run queue and the open dead letters.

Counters are counted where things happen (`tools.telemetry`); these are states of the database
every instance shares, so each instance reports the deployment's value (aggregate them with
`max`, not `sum`):

- `strategos_queue_depth`: runs the server accepted that no worker has picked up yet (Aegra's
  `runs` rows with status `pending`); `strategos_runs_running`: those executing now;
- `strategos_dead_letters_open{tenant}`: dead letters waiting for a replay or a resolution.

A scrape never waits on the event loop and never queries more than once per `REFRESH_S`:
prometheus_client's `/metrics` handler is synchronous (FastAPI runs it in its thread pool), so
the collector reads the database there, with a short connect and statement timeout, and caches
the answer; concurrent scrapes share one read. A database that does not answer leaves the
gauges out of the scrape (an absent series, not a wrong zero) until the next refresh.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
from prometheus_client.core import REGISTRY, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from service.dlq import TABLE as DLQ_TABLE

__all__ = ["DatabaseGauges", "register"]

log = logging.getLogger(__name__)

REFRESH_S = 5.0
"""The longest a scrape's values can be stale; also the fastest the database is read."""
TIMEOUT_S = 2
_RUNS_SQL = (
    "SELECT count(*) FILTER (WHERE status = 'pending'), "
    "count(*) FILTER (WHERE status = 'running') FROM runs WHERE status IN ('pending', 'running')"
)
_LETTERS_SQL = f"SELECT tenant, count(*) FROM {DLQ_TABLE} WHERE status = 'open' GROUP BY tenant"


@dataclass
class Reading:
    """One read of the database (None where it could not be read)."""

    pending: int | None = None
    running: int | None = None
    letters: dict[str, int] | None = field(default=None)


class DatabaseGauges(Collector):
    """A prometheus_client collector over a cached `Reading` of the serving database."""

    def __init__(
        self,
        database_url: str,
        *,
        refresh_s: float = REFRESH_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.database_url = database_url
        self.refresh_s = refresh_s
        self._clock = clock
        self._lock = threading.Lock()
        self._reading = Reading()
        self._read_at = float("-inf")

    def describe(self) -> Iterator[Metric]:
        """The families, without values: registering reads nothing."""
        yield from self._families(Reading())

    def collect(self) -> Iterator[Metric]:
        """The cached reading, refreshed first when it is older than `refresh_s`."""
        yield from self._families(self.reading())

    def reading(self) -> Reading:
        """The current reading; one caller refreshes it while the others wait for it."""
        with self._lock:
            if self._clock() - self._read_at >= self.refresh_s:
                self._reading = self._read()
                self._read_at = self._clock()
            return self._reading

    def _read(self) -> Reading:
        reading = Reading()
        try:
            with psycopg.connect(
                self.database_url, autocommit=True, connect_timeout=TIMEOUT_S
            ) as conn:
                conn.execute(f"SET statement_timeout = {TIMEOUT_S * 1000}")
                row = _rows(conn, _RUNS_SQL)
                if row:
                    reading.pending, reading.running = int(row[0][0]), int(row[0][1])
                letters = _rows(conn, _LETTERS_SQL)
                if letters is not None:
                    reading.letters = {str(tenant): int(count) for tenant, count in letters}
        except psycopg.Error as exc:
            log.warning("metrics: the database gauges could not be read: %s", type(exc).__name__)
        return reading

    @staticmethod
    def _families(reading: Reading) -> Iterator[Metric]:
        queue = GaugeMetricFamily(
            "strategos_queue_depth",
            "Runs accepted and waiting for a worker (the whole deployment's; aggregate by max).",
        )
        running = GaugeMetricFamily(
            "strategos_runs_running", "Runs executing now (the whole deployment's)."
        )
        letters = GaugeMetricFamily(
            "strategos_dead_letters_open",
            "Open dead letters (failed runs waiting for a replay or a resolution), by tenant.",
            labels=["tenant"],
        )
        if reading.pending is not None:
            queue.add_metric([], reading.pending)
        if reading.running is not None:
            running.add_metric([], reading.running)
        for tenant, count in sorted((reading.letters or {}).items()):
            letters.add_metric([tenant], count)
        yield from (queue, running, letters)


def _rows(conn: psycopg.Connection[Any], sql: str) -> list[tuple[Any, ...]] | None:
    """The statement's rows; None while its table does not exist.

    No dead letter recorded yet, or an Aegra that has not migrated: no reason to leave the
    other gauges out.
    """
    try:
        return conn.execute(sql).fetchall()
    except psycopg.errors.UndefinedTable:
        return None


_REGISTERED: DatabaseGauges | None = None


def register(database_url: str) -> DatabaseGauges:
    """Add the gauges to the default registry (the one `/metrics` serves), once per process."""
    global _REGISTERED
    if _REGISTERED is None:
        _REGISTERED = DatabaseGauges(database_url)
        REGISTRY.register(_REGISTERED)
    return _REGISTERED
