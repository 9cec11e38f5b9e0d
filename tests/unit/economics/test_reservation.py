"""The reservation arithmetic: reserve the worst case, shorten to fit, refuse below the floor."""

from __future__ import annotations

from service.budget import UNLIMITED, Grant, MemoryLedger, Pool, completion_fit

TASK = Pool("task:unit", 1000, local=True)


async def reserve(
    ledger: MemoryLedger, pools: list[Pool], **kw: int | str | float
) -> tuple[int, int]:
    args: dict[str, object] = {
        "rid": "r1",
        "prompt": 100,
        "want": 300,
        "n": 1,
        "floor": 64,
        "ttl_s": 60.0,
        "role": "coder",
    }
    args.update(kw)
    return await ledger.reserve(pools, **args)  # type: ignore[arg-type]


def test_completion_fit_is_the_room_after_the_prompt_per_choice() -> None:
    assert completion_fit(prompt=100, want=300, n=1, free=1000) == 300
    assert completion_fit(prompt=100, want=300, n=1, free=250) == 150
    assert completion_fit(prompt=100, want=300, n=4, free=500) == 100
    assert completion_fit(prompt=100, want=300, n=1, free=50) < 0


async def test_a_call_that_fits_reserves_its_worst_case() -> None:
    ledger = MemoryLedger()
    assert await reserve(ledger, [TASK]) == (300, 0)
    assert (await ledger.snapshot(TASK)).spent == 400
    assert (await ledger.snapshot(TASK)).busy == {"coder"}


async def test_a_call_is_shortened_to_what_is_left() -> None:
    ledger = MemoryLedger()
    await reserve(ledger, [TASK], rid="a", want=500)  # 600 reserved
    room, blocker = await reserve(ledger, [TASK], rid="b", want=500)
    assert (room, blocker) == (300, 0)  # 1000 - 600 - 100 prompt
    assert (await ledger.snapshot(TASK)).spent == 1000


async def test_below_the_floor_the_call_is_refused_and_nothing_is_reserved() -> None:
    ledger = MemoryLedger()
    await reserve(ledger, [TASK], rid="a", want=750)  # 850 reserved, 150 left
    assert await reserve(ledger, [TASK], rid="b") == (0, 1)  # 150 - 100 = 50 < 64
    assert (await ledger.snapshot(TASK)).spent == 850


async def test_settling_releases_the_unused_reservation() -> None:
    ledger = MemoryLedger()
    room, _ = await reserve(ledger, [TASK])
    grant = Grant("r1", (TASK,), 100, room, 1, "coder")
    await ledger.settle(grant, tokens=160, steps=1)
    snap = await ledger.snapshot(TASK)
    assert snap.spent == 160 and snap.by_role == {"coder": 160} and not snap.busy


async def test_n_choices_share_the_room_and_count_as_n_steps() -> None:
    ledger = MemoryLedger()
    steps = Pool("tenant:u:steps:hour:1", 5, "steps")
    assert await reserve(ledger, [TASK, steps], n=4, want=300) == (225, 0)  # (1000-100)/4
    assert (await ledger.snapshot(steps)).spent == 4
    assert await reserve(ledger, [TASK, steps], rid="b", n=2) == (0, 1)  # the task is full
    big = Pool("task:unit2", UNLIMITED, local=True)
    assert await reserve(ledger, [big, steps], rid="c", n=2) == (0, 2)  # 1 step left of 5


async def test_the_tightest_pool_decides_and_a_refusal_names_it() -> None:
    ledger = MemoryLedger()
    tenant = Pool("tenant:u:tokens:hour:1", 300, "tokens")
    assert await reserve(ledger, [TASK, tenant]) == (200, 0)
    assert await reserve(ledger, [TASK, tenant], rid="b") == (0, 2)


async def test_an_expired_reservation_stops_counting() -> None:
    ledger = MemoryLedger()
    await reserve(ledger, [TASK], rid="crashed", want=890, ttl_s=-1.0)  # already expired
    assert await reserve(ledger, [TASK], rid="resumed") == (300, 0)


async def test_the_role_cap_applies_before_the_pools() -> None:
    ledger = MemoryLedger()
    assert await reserve(ledger, [TASK], role_free=250) == (150, 0)
    assert await reserve(ledger, [TASK], rid="b", role_free=150) == (0, -1)
