"""The limit store's in-process lock (a single server without Redis)."""

from __future__ import annotations

import asyncio

import pytest

from service.rate_limits import LimitStore, LockBusy
from service.settings import Settings


async def test_one_holder_at_a_time_a_late_waiter_gives_up_and_nothing_is_kept() -> None:
    store = LimitStore(Settings(), None)
    order: list[str] = []

    async def hold(tag: str, seconds: float) -> None:
        async with store.lock("task:1", hold_s=10, wait_s=1.0):
            order.append(f"{tag} in")
            await asyncio.sleep(seconds)
            order.append(f"{tag} out")

    await asyncio.gather(hold("a", 0.05), hold("b", 0.0))
    assert order == ["a in", "a out", "b in", "b out"]

    first = asyncio.create_task(hold("c", 0.3))
    await asyncio.sleep(0.01)
    with pytest.raises(LockBusy):
        async with store.lock("task:1", hold_s=10, wait_s=0.05):
            pass
    await first
    assert len(store._named) == 0, "a lock nobody holds or waits for is forgotten"
