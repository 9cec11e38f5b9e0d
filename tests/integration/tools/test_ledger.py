"""The ledger on PostgreSQL and SQLite: exactly-once claims, fencing, and the event log."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from tests.integration.tools.conftest import Clock, connect
from tools.ledger import EventDraft, Ledger, idempotency_key, open_ledger

ARGS = {"path": "a.py", "content": "x"}


async def begin(ledger: Ledger, key: str, lease_s: float = 60) -> str:
    outcome = await ledger.begin(
        key, thread_id="t1", tool="write_file", tool_call_id="c1", args=ARGS, lease_s=lease_s
    )
    return outcome.action


async def test_run_then_replay_with_the_recorded_result(ledger: Ledger) -> None:
    key = idempotency_key("t1", "", "c1", ARGS)
    assert await begin(ledger, key) == "run"
    assert await ledger.complete(key, {"result": {"n": 1}, "nested": [1, "two", None]})
    outcome = await ledger.begin(
        key, thread_id="t1", tool="write_file", tool_call_id="c1", args=ARGS
    )
    assert outcome.action == "replay" and outcome.entry.state == "completed"
    assert outcome.entry.result == {"result": {"n": 1}, "nested": [1, "two", None]}
    assert outcome.entry.args == ARGS
    assert not await ledger.complete(key, {"again": True}), "a final state is never overwritten"
    assert not await ledger.fail(key, "late failure")


async def test_failures_are_recorded_outcomes(ledger: Ledger) -> None:
    key = idempotency_key("t1", "", "c2", ARGS)
    assert await begin(ledger, key) == "run"
    assert await ledger.fail(key, "disk full")
    entry = await ledger.get(key)
    assert entry is not None and entry.state == "failed" and entry.error == "disk full"
    assert await begin(ledger, key) == "replay"


async def test_concurrent_begins_for_one_key_claim_it_exactly_once(ledger_url: str) -> None:
    ledgers = [await connect(ledger_url) for _ in range(3)]
    try:
        key = idempotency_key("t1", "", "race", ARGS)
        actions = await asyncio.gather(*(begin(ledgers[i % 3], key) for i in range(12)))
        assert actions.count("run") == 1 and actions.count("in_flight") == 11
    finally:
        for store in ledgers:
            await store.close()


async def test_expired_lease_is_in_doubt_and_reclaim_fences_the_old_worker(
    ledger: Ledger, clock: Clock
) -> None:
    key = idempotency_key("t1", "", "c3", ARGS)
    assert await begin(ledger, key, lease_s=10) == "run"
    assert await begin(ledger, key) == "in_flight"
    clock.now += 11
    assert await begin(ledger, key) == "in_doubt"
    first = await ledger.reclaim(key, lease_s=10)
    assert first is not None and first.entry.attempt == 2
    assert await ledger.reclaim(key) is None, "only one worker takes over"
    assert not await ledger.complete(key, {"stale": True}, attempt=1), "old attempt is fenced"
    assert await ledger.complete(key, {"fresh": True}, attempt=2)
    entry = await ledger.get(key)
    assert entry is not None and entry.result == {"fresh": True}


async def test_a_renewed_lease_stays_in_flight_and_only_its_attempt_may_renew(
    ledger: Ledger, clock: Clock
) -> None:
    key = idempotency_key("t1", "", "c5", ARGS)
    assert await begin(ledger, key, lease_s=10) == "run"
    clock.now += 8
    assert await ledger.renew(key, attempt=1, lease_s=10)
    clock.now += 8
    assert await begin(ledger, key) == "in_flight", "the heartbeat kept the lease alive"
    clock.now += 3
    assert await begin(ledger, key) == "in_doubt", "no beat for a whole lease"
    taken = await ledger.reclaim(key, lease_s=10)
    assert taken is not None and taken.entry.attempt == 2
    assert not await ledger.renew(key, attempt=1, lease_s=10), "the dead worker is fenced"
    assert await ledger.complete(key, {"ok": True}, attempt=2)
    assert not await ledger.renew(key, attempt=2, lease_s=10), "a finished call has no lease"


async def test_wait_returns_once_the_owner_finishes(ledger: Ledger) -> None:
    key = idempotency_key("t1", "", "c4", ARGS)
    await begin(ledger, key)

    async def finish() -> None:
        await asyncio.sleep(0.1)
        await ledger.complete(key, {"done": True})

    task = asyncio.ensure_future(finish())
    entry = await ledger.wait(key, timeout_s=5, poll_s=0.02)
    await task
    assert entry.state == "completed"


async def test_key_is_bound_to_its_tool(ledger: Ledger) -> None:
    key = idempotency_key("t1", "", "c5", ARGS)
    await begin(ledger, key)
    with pytest.raises(Exception, match="belongs to tool 'write_file'"):
        await ledger.begin(key, thread_id="t1", tool="apply_patch", tool_call_id="c5", args=ARGS)


def test_idempotency_key_covers_every_part_and_ignores_key_order() -> None:
    base = idempotency_key("t", "ns", "c", {"a": 1, "b": [1, 2]})
    assert base == idempotency_key("t", "ns", "c", {"b": [1, 2], "a": 1})
    variants = [
        idempotency_key("t2", "ns", "c", {"a": 1, "b": [1, 2]}),
        idempotency_key("t", "ns2", "c", {"a": 1, "b": [1, 2]}),
        idempotency_key("t", "ns", "c2", {"a": 1, "b": [1, 2]}),
        idempotency_key("t", "ns", "c", {"a": 2, "b": [1, 2]}),
    ]
    assert len({base, *variants}) == 5 and len(base) == 64


async def test_event_ids_increase_by_one_per_thread_under_concurrency(ledger_url: str) -> None:
    writers = [await connect(ledger_url) for _ in range(3)]
    try:
        await asyncio.gather(
            *(
                writers[i % 3].append_event(f"thread-{i % 2}", "TimerFired", {"i": i})
                for i in range(40)
            )
        )
        for thread in ("thread-0", "thread-1"):
            events = await writers[0].events(thread, 0, 100)
            assert [e.id for e in events] == list(range(1, 21))
            assert sorted(int(str(e.data["i"])) % 2 for e in events) == [int(thread[-1])] * 20
    finally:
        for store in writers:
            await store.close()


async def test_event_cursor_filters_and_limits(ledger: Ledger) -> None:
    for kind in ("WorkflowStarted", "ActivityScheduled", "ActivityCompleted", "ApprovalRequested"):
        await ledger.append_event("t9", kind, {"k": kind}, key="K" if "Activity" in kind else None)
    page = await ledger.events("t9", after_id=1, limit=2)
    assert [(e.id, e.kind) for e in page] == [(2, "ActivityScheduled"), (3, "ActivityCompleted")]
    assert [e.id for e in await ledger.events("t9", kinds=["ApprovalRequested"])] == [4]
    assert [e.id for e in await ledger.events("t9", key="K")] == [2, 3]
    assert await ledger.events("t9", kinds=[]) == []
    assert await ledger.events("other-thread") == []
    assert await ledger.last_event_id("t9") == 4
    assert await ledger.last_event_id("other-thread") == 0


async def test_events_are_append_only(ledger: Ledger, ledger_url: str) -> None:
    await ledger.append_event("t1", "WorkflowStarted", {})
    if ledger_url.startswith("postgresql"):
        with psycopg.connect(ledger_url, autocommit=True) as conn:
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                conn.execute("UPDATE strategos_events SET kind = 'x'")
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                conn.execute("DELETE FROM strategos_events")
    else:
        import sqlite3

        with sqlite3.connect(ledger_url.removeprefix("sqlite://")) as conn:
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                conn.execute("UPDATE strategos_events SET kind = 'x'")
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                conn.execute("DELETE FROM strategos_events")
    assert len(await ledger.events("t1")) == 1


async def test_setup_is_idempotent_and_open_ledger_picks_the_backend(ledger_url: str) -> None:
    store = await open_ledger(ledger_url)
    try:
        await store.setup()
        await store.setup()
        assert (await store.append_event("t", "WorkflowStarted")).id == 1
    finally:
        await store.close()


async def test_a_claim_and_an_outcome_are_written_with_their_events(ledger: Ledger) -> None:
    key = idempotency_key("t-logged", "", "c1", ARGS)
    scheduled = EventDraft(thread_id="t-logged", kind="ActivityScheduled", data={"a": 1}, key=key)
    outcome = await ledger.begin(
        key, thread_id="t-logged", tool="write_file", tool_call_id="c1", args=ARGS, event=scheduled
    )
    assert outcome.action == "run"
    again = await ledger.begin(
        key, thread_id="t-logged", tool="write_file", tool_call_id="c1", args=ARGS, event=scheduled
    )
    assert again.action == "in_flight", "a lost claim writes no event"
    done = EventDraft(thread_id="t-logged", kind="ActivityCompleted", data={"ms": 3}, key=key)
    assert await ledger.complete(key, {"result": {}}, attempt=1, event=done)
    events = await ledger.events("t-logged")
    assert [(e.kind, e.key, e.data) for e in events] == [
        ("ActivityScheduled", key, {"a": 1}),
        ("ActivityCompleted", key, {"ms": 3}),
    ]


async def test_an_outcome_whose_event_cannot_be_written_is_not_recorded_either(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pair is one transaction: a failure between the two writes leaves the call scheduled,
    so a resumed task sees it in doubt (or re-runs it) instead of a result with no log entry."""
    key = idempotency_key("t-atomic", "", "c1", ARGS)
    assert (
        await ledger.begin(
            key, thread_id="t-atomic", tool="write_file", tool_call_id="c1", args=ARGS
        )
    ).action == "run"

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("connection lost between the two writes")

    monkeypatch.setattr(ledger, "_append_draft", broken)
    done = EventDraft(thread_id="t-atomic", kind="ActivityCompleted", data={}, key=key)
    with pytest.raises(RuntimeError):
        await ledger.complete(key, {"result": {"n": 1}}, attempt=1, event=done)
    entry = await ledger.get(key)
    assert entry is not None and entry.state == "scheduled" and entry.result is None
    assert await ledger.events("t-atomic") == []
    monkeypatch.undo()
    assert await ledger.complete(key, {"result": {"n": 1}}, attempt=1, event=done)
    assert [e.kind for e in await ledger.events("t-atomic")] == ["ActivityCompleted"]
