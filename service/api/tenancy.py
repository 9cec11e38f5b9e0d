"""Tenants and their API keys: who is calling, decided the same way by the façade and the server.

Keys are never stored: a key's HMAC-SHA256 digest is (keyed by `STRATEGOS_API_KEY_PEPPER`, or by
a random per-deployment salt kept in the database when no pepper is configured), so a leaked
table does not hand out working keys, and lookup is still one indexed equality. The table is
`strategos_api_keys` in PostgreSQL when `STRATEGOS_DATABASE_URL` is set, else SQLite in the data
dir. `STRATEGOS_API_KEYS="tenant:key,…"` seeds keys at startup, so a deployment needs no CLI.

With no key configured anywhere (and `STRATEGOS_REQUIRE_API_KEY` off) the deployment is in
*open mode*: callers without a key act as the single tenant `local`, which keeps `langgraph dev`
and Studio working with zero setup. As soon as one key exists every caller needs one.
"""

from __future__ import annotations

import abc
import asyncio
import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from service.settings import Settings, get_settings
from service.sqlstore import PostgresConnection, SqliteConnection, is_postgres_url

__all__ = [
    "ANONYMOUS_TENANT",
    "Identity",
    "KeyStore",
    "Unauthenticated",
    "api_key_from_headers",
    "get_key_store",
    "keys_required",
    "parse_seed",
    "resolve_identity",
]

log = logging.getLogger(__name__)

ANONYMOUS_TENANT = "local"
"""The tenant of open mode (also `TeamContext.tenant`'s default)."""
KEYS_TABLE = "strategos_api_keys"
AGENT_KEYS_TABLE = "strategos_agent_keys"
"""Digests of keys that may submit work but never approve it (automation, agents)."""
META_TABLE = "strategos_tenancy_meta"
TENANT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
MIN_KEY_LEN = 8
_CACHE_TTL_S = 30.0
_CACHE_MAX = 10_000


@dataclass(frozen=True)
class KeyOwner:
    """Whose a key is, and whether it may answer approvals."""

    tenant: str
    can_approve: bool = True


class Unauthenticated(Exception):
    """No valid API key: the caller gets 401 whichever route it called."""


class Identity(BaseModel):
    """An authenticated caller: the tenant, and the key to forward to the server (if any)."""

    tenant: str
    api_key: str | None = Field(default=None, repr=False, exclude=True)
    anonymous: bool = False
    can_approve: bool = True
    """A person's key answers approvals; an agent key (`STRATEGOS_AGENT_API_KEYS`) cannot."""


def parse_seed(seed: str) -> list[tuple[str, str]]:
    """`tenant:key,tenant2:key2` → pairs; a malformed entry is an error naming its position only.

    The message never contains the key itself, so a typo cannot leak one into a log.
    """
    pairs: list[tuple[str, str]] = []
    for index, entry in enumerate(part.strip() for part in seed.split(",")):
        if not entry:
            continue
        tenant, sep, key = entry.partition(":")
        if not sep or not TENANT_RE.fullmatch(tenant) or len(key) < MIN_KEY_LEN:
            raise ValueError(
                f"STRATEGOS_API_KEYS entry {index + 1} must be 'tenant:key' with a tenant of "
                f"letters, digits, '_', '-', '.' and a key of at least {MIN_KEY_LEN} characters"
            )
        pairs.append((tenant, key))
    return pairs


def api_key_from_headers(headers: Mapping[Any, Any]) -> str | None:
    """The key from `x-api-key` or `Authorization: Bearer …` (bytes or str headers alike).

    langgraph-api hands auth handlers a dict of bytes, Aegra a dict of str; both are accepted.
    """
    found: dict[str, str] = {}
    for name, value in headers.items():
        key = name.decode("latin-1") if isinstance(name, bytes) else str(name)
        text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
        found[key.lower()] = text
    if api_key := found.get("x-api-key", "").strip():
        return api_key
    scheme, _, token = found.get("authorization", "").strip().partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


class KeyStore(abc.ABC):
    """Hashed API keys → tenants, with a short in-process cache of positive lookups."""

    def __init__(self, pepper: bytes | None) -> None:
        self._pepper = pepper
        self._cache: dict[str, tuple[KeyOwner, float]] = {}
        self._has_keys: tuple[bool, float] | None = None

    @abc.abstractmethod
    async def _setup(self) -> None:
        """Create the tables if missing."""

    @abc.abstractmethod
    async def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        """Run one statement; the rows it returns (none for a write)."""

    @abc.abstractmethod
    def _sql(self, sql: str) -> str:
        """The statement with the driver's parameter markers (the SQL here uses `?`)."""

    async def _salt(self) -> bytes:
        """The per-deployment salt (created once, then read)."""
        await self._rows(
            self._sql(
                f"INSERT INTO {META_TABLE} (name, value) VALUES ('salt', ?) "
                "ON CONFLICT (name) DO NOTHING"
            ),
            (secrets.token_hex(32),),
        )
        [(value,)] = await self._rows(f"SELECT value FROM {META_TABLE} WHERE name = 'salt'")
        return bytes.fromhex(str(value))

    async def _insert(self, digest: str, tenant: str, *, agent: bool) -> str:
        """Insert unless present; the tenant the digest belongs to afterwards."""
        await self._rows(
            self._sql(
                f"INSERT INTO {KEYS_TABLE} (digest, tenant, created_at) VALUES (?, ?, ?) "
                "ON CONFLICT (digest) DO NOTHING"
            ),
            (digest, tenant, time.time()),
        )
        owner = await self._lookup(digest)
        if agent and owner is not None and owner.tenant == tenant:
            await self._rows(
                self._sql(
                    f"INSERT INTO {AGENT_KEYS_TABLE} (digest) VALUES (?) "
                    "ON CONFLICT (digest) DO NOTHING"
                ),
                (digest,),
            )
        return owner.tenant if owner else tenant

    async def _lookup(self, digest: str) -> KeyOwner | None:
        """The tenant of a digest, and whether it is an agent's key."""
        rows = await self._rows(
            self._sql(
                f"SELECT k.tenant, a.digest FROM {KEYS_TABLE} k LEFT JOIN {AGENT_KEYS_TABLE} a "
                "ON a.digest = k.digest WHERE k.digest = ?"
            ),
            (digest,),
        )
        return KeyOwner(str(rows[0][0]), can_approve=rows[0][1] is None) if rows else None

    async def _count(self) -> int:
        """How many keys exist."""
        [(count,)] = await self._rows(f"SELECT COUNT(*) FROM {KEYS_TABLE}")
        return int(count)

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections."""

    async def setup(self) -> None:
        """Create tables and settle the HMAC key (the pepper, else the stored salt)."""
        await self._setup()
        if self._pepper is None:
            self._pepper = await self._salt()

    def digest(self, api_key: str) -> str:
        """HMAC-SHA256 of the key; only this is stored or compared."""
        if self._pepper is None:
            raise RuntimeError("KeyStore.setup() must run before keys are hashed")
        return hmac.new(self._pepper, api_key.encode("utf-8"), hashlib.sha256).hexdigest()

    async def add_key(self, tenant: str, api_key: str, *, agent: bool = False) -> bool:
        """Register a key for a tenant; False if the key already belongs to another tenant.

        An `agent` key may submit and watch tasks but never answer an approval.
        """
        if not TENANT_RE.fullmatch(tenant) or len(api_key) < MIN_KEY_LEN:
            raise ValueError("invalid tenant name or key too short")
        owner = await self._insert(self.digest(api_key), tenant, agent=agent)
        self._has_keys = None
        return owner == tenant

    async def owner_of(self, api_key: str) -> KeyOwner | None:
        """Who a key belongs to (cached for a short while; misses are not cached)."""
        digest = self.digest(api_key)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[1] > now:
            return cached[0]
        owner = await self._lookup(digest)
        if owner is not None:
            if len(self._cache) >= _CACHE_MAX:
                self._cache.clear()
            self._cache[digest] = (owner, now + _CACHE_TTL_S)
        return owner

    async def tenant_of(self, api_key: str) -> str | None:
        """The tenant a key belongs to."""
        owner = await self.owner_of(api_key)
        return owner.tenant if owner else None

    async def has_keys(self) -> bool:
        """Whether any key exists (cached briefly: it decides open mode on every request)."""
        now = time.monotonic()
        if self._has_keys is None or self._has_keys[1] <= now:
            self._has_keys = (await self._count() > 0, now + _CACHE_TTL_S)
        return self._has_keys[0]

    async def seed(self, seed: str, *, agent: bool = False) -> int:
        """Add the `tenant:key,…` pairs; returns how many were new or already this tenant's."""
        added = 0
        for index, (tenant, api_key) in enumerate(parse_seed(seed)):
            if await self.add_key(tenant, api_key, agent=agent):
                added += 1
            else:
                log.warning("API key seed entry %d already belongs to another tenant", index + 1)
        return added


class SqliteKeyStore(SqliteConnection, KeyStore):
    """Embedded backend: one aiosqlite connection (WAL), shared by the process."""

    def __init__(self, path: Path, pepper: bytes | None) -> None:
        super().__init__(pepper)
        self._open_sqlite(path)

    async def _setup(self) -> None:
        await self._rows(
            f"CREATE TABLE IF NOT EXISTS {KEYS_TABLE} (digest TEXT PRIMARY KEY, "
            "tenant TEXT NOT NULL, created_at REAL NOT NULL)"
        )
        await self._rows(
            f"CREATE TABLE IF NOT EXISTS {META_TABLE} (name TEXT PRIMARY KEY, value TEXT NOT NULL)"
        )
        await self._rows(f"CREATE TABLE IF NOT EXISTS {AGENT_KEYS_TABLE} (digest TEXT PRIMARY KEY)")


class PostgresKeyStore(PostgresConnection, KeyStore):
    """PostgreSQL backend on a small psycopg pool (autocommit)."""

    def __init__(self, url: str, pepper: bytes | None) -> None:
        super().__init__(pepper)
        self._open_pool(url)

    async def _setup(self) -> None:
        await self.pool.open(wait=True)
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (KEYS_TABLE,))
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {KEYS_TABLE} (digest TEXT PRIMARY KEY, "
                "tenant TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL)"
            )
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {META_TABLE} "
                "(name TEXT PRIMARY KEY, value TEXT NOT NULL)"
            )
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {AGENT_KEYS_TABLE} (digest TEXT PRIMARY KEY)"
            )


def open_key_store(settings: Settings) -> KeyStore:
    """The backend for the settings (not yet set up)."""
    pepper = (
        settings.api_key_pepper.get_secret_value().encode("utf-8")
        if settings.api_key_pepper
        else None
    )
    if settings.database_url and is_postgres_url(settings.database_url):
        return PostgresKeyStore(settings.database_url, pepper)
    return SqliteKeyStore(settings.data_dir / "tenancy.sqlite", pepper)


_STORES: dict[int, KeyStore] = {}
_STORE_LOCK: dict[int, asyncio.Lock] = {}


async def get_key_store() -> KeyStore:
    """The process's key store for the running loop, set up and seeded on first use.

    Connections are bound to the loop that opened them, hence one store per loop; the server's
    auth handler and the façade share it because they run on the same loop.
    """
    loop_id = id(asyncio.get_running_loop())
    lock = _STORE_LOCK.setdefault(loop_id, asyncio.Lock())
    async with lock:
        if loop_id not in _STORES:
            settings = get_settings()
            store = open_key_store(settings)
            await store.setup()
            if settings.api_keys is not None:
                seeded = await store.seed(settings.api_keys.get_secret_value())
                log.info("Seeded %d API key(s) from STRATEGOS_API_KEYS", seeded)
            if settings.agent_api_keys is not None:
                seeded = await store.seed(settings.agent_api_keys.get_secret_value(), agent=True)
                log.info("Seeded %d agent key(s) from STRATEGOS_AGENT_API_KEYS", seeded)
            _STORES[loop_id] = store
        return _STORES[loop_id]


async def close_key_stores() -> None:
    """Close the store of the running loop (lifespan shutdown)."""
    loop_id = id(asyncio.get_running_loop())
    store = _STORES.pop(loop_id, None)
    if store is not None:
        await store.close()


async def keys_required() -> bool:
    """Whether callers need a key (any key exists, or the deployment demands one)."""
    return get_settings().require_api_key or await (await get_key_store()).has_keys()


async def resolve_identity(headers: Mapping[Any, Any]) -> Identity:
    """Who is calling: a known key's tenant, the anonymous tenant in open mode, else 401."""
    store = await get_key_store()
    api_key = api_key_from_headers(headers)
    if api_key is not None:
        owner = await store.owner_of(api_key)
        if owner is None:
            raise Unauthenticated("invalid API key")
        return Identity(tenant=owner.tenant, api_key=api_key, can_approve=owner.can_approve)
    if await keys_required():
        raise Unauthenticated("an API key is required (header x-api-key or Bearer token)")
    return Identity(tenant=ANONYMOUS_TENANT, anonymous=True)
