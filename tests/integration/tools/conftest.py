"""Both ledger backends for the same tests: PostgreSQL (a fresh schema) and SQLite (tmp)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tools.ledger import Ledger, PostgresLedger, SqliteLedger


class Clock:
    """A settable clock for lease expiry without sleeping."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["sqlite", "postgres"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_url"))
    return f"sqlite:///{tmp_path / 'ledger.db'}"


async def connect(url: str, clock: Clock | None = None) -> Ledger:
    """A new ledger object on the same store (what a restarted process would open)."""
    kwargs = {"clock": clock} if clock is not None else {}
    if url.startswith("postgresql://"):
        ledger: Ledger = await PostgresLedger.from_url(url, max_size=4, **kwargs)
    else:
        ledger = SqliteLedger(url.removeprefix("sqlite://"), **kwargs)
    await ledger.setup()
    return ledger


@pytest.fixture
async def ledger(ledger_url: str, clock: Clock) -> AsyncIterator[Ledger]:
    store = await connect(ledger_url, clock)
    yield store
    await store.close()
