"""The database gauges on a real PostgreSQL: read at scrape time, cached, absent when unreachable.

The dead letters are recorded by the real store; the scrape is prometheus_client's own text
rendering of a registry holding only the gauges. The served values (queue depth, letters
after a failed task) are checked by the façade tests' scrapes of two Aegra instances.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from service.dlq import PostgresDeadLetterStore
from service.serving.gauges import DatabaseGauges


class Clock:
    """Time that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def scrape(gauges: DatabaseGauges) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    registry.register(gauges)
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_open_letters_per_tenant_are_read_at_most_once_per_period(pg_url: str) -> None:
    store = PostgresDeadLetterStore(pg_url)
    await store.setup()
    clock = Clock()
    gauges = DatabaseGauges(pg_url, refresh_s=5.0, clock=clock)
    try:
        assert scrape(gauges) == {}  # no runs table here, no letter yet: nothing to report
        common: dict[str, Any] = {
            "task_id": "t1",
            "error": "boom",
            "input": None,
            "checkpoint_id": None,
        }
        await store.record(tenant="alice", run_id="r1", **common)
        await store.record(tenant="bob", run_id="r2", **common)
        clock.now = 5.0
        assert scrape(gauges) == {
            ("strategos_dead_letters_open", (("tenant", "alice"),)): 1.0,
            ("strategos_dead_letters_open", (("tenant", "bob"),)): 1.0,
        }
        letter = await store.record(tenant="alice", run_id="r3", **common)
        assert await store.transition(
            "bob",
            (await store.list("bob", "open", 1, 0))[0].id,
            from_status=("open",),
            to_status="resolved",
        )
        clock.now = 9.0  # within the period: the cached reading, no query
        assert scrape(gauges)[("strategos_dead_letters_open", (("tenant", "alice"),))] == 1.0
        clock.now = 10.0
        found = scrape(gauges)
        assert found == {("strategos_dead_letters_open", (("tenant", "alice"),)): 2.0}
        assert letter.attempts == 2
    finally:
        await store.close()


def test_an_unreachable_database_leaves_the_gauges_out() -> None:
    gauges = DatabaseGauges("postgresql://postgres@127.0.0.1:1/none", refresh_s=0.0)
    assert scrape(gauges) == {}  # absent, not a wrong zero
