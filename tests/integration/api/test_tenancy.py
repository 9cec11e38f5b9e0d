"""Key hashing, seeding and header parsing, and the in-process limit store (no server needed)."""

from __future__ import annotations

from pathlib import Path

import aiosqlite
import pytest

from service.api.tenancy import (
    PostgresKeyStore,
    SqliteKeyStore,
    api_key_from_headers,
    parse_seed,
)
from service.rate_limits import LimitStore, TenantLimits, limits_for
from service.settings import Settings


async def test_keys_are_stored_hashed_and_map_to_their_tenant(tmp_path: Path) -> None:
    store = SqliteKeyStore(tmp_path / "tenancy.sqlite", pepper=None)
    await store.setup()
    try:
        assert not await store.has_keys()
        assert await store.seed("alice:alice-secret-1, bob:bob-secret-22") == 2
        assert await store.tenant_of("alice-secret-1") == "alice"
        assert await store.tenant_of("bob-secret-22") == "bob"
        assert await store.tenant_of("nobody-key-1") is None
        assert await store.has_keys()
        # The same key cannot be moved to another tenant by a later seed.
        assert not await store.add_key("mallory", "alice-secret-1")
        assert await store.tenant_of("alice-secret-1") == "alice"
    finally:
        await store.close()
    async with aiosqlite.connect(tmp_path / "tenancy.sqlite") as db:
        rows = await (await db.execute("SELECT digest, tenant FROM strategos_api_keys")).fetchall()
        dump = (tmp_path / "tenancy.sqlite").read_bytes()
    assert {tenant for _, tenant in rows} == {"alice", "bob"}
    assert all(len(digest) == 64 for digest, _ in rows)
    assert b"alice-secret-1" not in dump and b"bob-secret-22" not in dump


async def test_a_pepper_changes_every_digest(tmp_path: Path) -> None:
    salted = SqliteKeyStore(tmp_path / "a.sqlite", pepper=None)
    peppered = SqliteKeyStore(tmp_path / "b.sqlite", pepper=b"deployment-secret")
    await salted.setup()
    await peppered.setup()
    try:
        assert salted.digest("same-key-123") != peppered.digest("same-key-123")
    finally:
        await salted.close()
        await peppered.close()


def test_seed_errors_never_contain_the_key() -> None:
    with pytest.raises(ValueError) as info:
        parse_seed("alice:short")
    assert "short" not in str(info.value) and "entry 1" in str(info.value)
    with pytest.raises(ValueError):
        parse_seed("no-colon-here-at-all")
    assert parse_seed(" a:12345678 ,, b.c:abcdefgh ") == [("a", "12345678"), ("b.c", "abcdefgh")]


def test_keys_come_from_x_api_key_or_bearer_in_bytes_or_str_headers() -> None:
    assert api_key_from_headers({b"x-api-key": b"k-123456"}) == "k-123456"
    assert api_key_from_headers({"X-Api-Key": "k-123456"}) == "k-123456"
    assert api_key_from_headers({b"authorization": b"Bearer t-123456"}) == "t-123456"
    assert api_key_from_headers({"Authorization": "Basic abc"}) is None
    assert api_key_from_headers({}) is None


async def test_in_process_token_bucket_and_gauges() -> None:
    settings = Settings(
        tenant_limits={"t": {"rate_limit_per_s": 1, "rate_limit_burst": 2}},
        backpressure_max_queue=2,
        backpressure_max_model_429_per_min=3,
    )
    limits = limits_for(settings, "t")
    assert limits == TenantLimits(rate_limit_per_s=1, rate_limit_burst=2, max_active_tasks=50)
    store = LimitStore(settings, None)
    assert [await store.take("t", limits) for _ in range(2)] == [0.0, 0.0]
    assert 0 < await store.take("t", limits) <= 1.0
    assert await store.take("other", limits) == 0.0

    assert await store.backpressure() is None
    await store.run_started("r1")
    await store.run_started("r2")
    pressure = await store.backpressure()
    assert pressure is not None and "2 runs" in pressure.reason
    await store.run_finished("r1")
    assert await store.backpressure() is None
    await store.record_model_429(3)
    pressure = await store.backpressure()
    assert pressure is not None and "model endpoint" in pressure.reason


async def test_the_postgresql_key_store_behaves_the_same(pg_url: str) -> None:
    store = PostgresKeyStore(pg_url, pepper=None)
    await store.setup()
    try:
        assert not await store.has_keys()
        assert await store.seed("alice:alice-secret-1") == 1
        assert await store.tenant_of("alice-secret-1") == "alice"
        assert await store.tenant_of("nobody-key-1") is None
        assert not await store.add_key("mallory", "alice-secret-1")
        rows = await store._rows("SELECT digest, tenant FROM strategos_api_keys")
    finally:
        await store.close()
    assert [(len(digest), tenant) for digest, tenant in rows] == [(64, "alice")]
    again = PostgresKeyStore(pg_url, pepper=None)
    await again.setup()
    try:
        assert await again.tenant_of("alice-secret-1") == "alice", "the salt is kept"
    finally:
        await again.close()
