"""Where registered documents live: durable stores (memory, SQL) and shared caches (memory, Redis).

A ``Store`` is the source of truth for the trusted lists. Every change to it bumps a
monotonically increasing *registry version* in the same transaction (for SQL: the one row
of ``persisted_documents_version``). Registries poll that version (one tiny query) at most
every ``check_interval`` and drop their local caches when it moved, which is how a
registration or a retirement reaches every worker on every host within a second, without
a restart. A ``Cache`` is a shared read-through layer (entries keyed by that version, so a
new version never reads an old entry) and the home of APQ documents, which are untrusted
and content-addressed and therefore never written to a store.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import orjson
import sqlalchemy as sa
import uuid_utils.compat
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from persisted_queries.ids import is_sha256

logger = logging.getLogger(__name__)

METADATA = sa.MetaData()

# Mirrors the table the application's migrations create; this package never imports them.
DOCUMENTS = sa.Table(
    "persisted_documents",
    METADATA,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("client_name", sa.String(200), nullable=False),
    sa.Column("document_id", sa.String(200), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("body", sa.Text(), nullable=False),
    sa.Column("operation_name", sa.String(200), nullable=True),
    sa.Column("cost", sa.Integer(), nullable=False),
    sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("client_name", "document_id", name="uq_persisted_client_id"),
    sa.Index("ix_persisted_sha256", "sha256"),
)

# One row (id = 1) whose version grows by one with every change to persisted_documents.
VERSIONS = sa.Table(
    "persisted_documents_version",
    METADATA,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("version", sa.BigInteger(), nullable=False),
)


@dataclass(frozen=True, slots=True)
class StoredDocument:
    """One registered document of one client's list."""

    client_name: str
    document_id: str
    sha256: str
    body: str
    operation_name: str | None
    cost: int
    retired_at: dt.datetime | None = None
    created_at: dt.datetime | None = None

    def to_json(self) -> bytes:
        """Serialise for a cache (timestamps dropped: caches only hold active documents)."""
        return orjson.dumps(
            [
                self.client_name,
                self.document_id,
                self.sha256,
                self.body,
                self.operation_name,
                self.cost,
            ]
        )

    @classmethod
    def from_json(cls, raw: bytes | str) -> StoredDocument:
        """Deserialise what ``to_json`` wrote."""
        client_name, document_id, sha256, body, operation_name, cost = orjson.loads(raw)
        return cls(client_name, document_id, sha256, body, operation_name, cost)


class Store(Protocol):
    """The durable source of truth of the trusted lists."""

    async def lookup(self, client_names: Sequence[str], key: str) -> StoredDocument | None:
        """Return the active document of the first client whose id (then sha256) is ``key``."""
        ...

    async def documents(
        self,
        client_name: str | None,
        *,
        ids: Collection[str] | None = None,
        include_retired: bool = False,
    ) -> list[StoredDocument]:
        """Return a client's documents (every client's for None), sorted by client and id."""
        ...

    async def save(self, docs: Sequence[StoredDocument]) -> None:
        """Insert documents, or reactivate and re-price existing (client, id) rows."""
        ...

    async def retire(self, client_name: str, ids: Collection[str]) -> list[str]:
        """Retire the active documents among ``ids``; return the ids retired."""
        ...

    async def version(self) -> int:
        """Return the registry version, which grows with every change."""
        ...


def pick(
    rows: Sequence[StoredDocument], client_names: Sequence[str], key: str
) -> StoredDocument | None:
    """Choose among active candidate rows: client order first, then id match over sha256 match."""
    for client in client_names:
        by_hash = None
        for row in rows:
            if row.client_name != client or row.retired_at is not None:
                continue
            if row.document_id == key:
                return row
            if row.sha256 == key and (by_hash is None or row.document_id < by_hash.document_id):
                by_hash = row
        if by_hash is not None:
            return by_hash
    return None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class MemoryStore:
    """An in-process store, for one process without a database and for tests."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], StoredDocument] = {}
        self._version = 0

    async def lookup(self, client_names: Sequence[str], key: str) -> StoredDocument | None:
        """Return the active document of the first client whose id (then sha256) is ``key``."""
        candidates = [
            row
            for row in self._rows.values()
            if row.client_name in client_names and key in (row.document_id, row.sha256)
        ]
        return pick(candidates, client_names, key)

    async def documents(
        self,
        client_name: str | None,
        *,
        ids: Collection[str] | None = None,
        include_retired: bool = False,
    ) -> list[StoredDocument]:
        """Return a client's documents (every client's for None), sorted by client and id."""
        return sorted(
            (
                row
                for row in self._rows.values()
                if (client_name is None or row.client_name == client_name)
                and (ids is None or row.document_id in ids)
                and (include_retired or row.retired_at is None)
            ),
            key=lambda row: (row.client_name, row.document_id),
        )

    async def save(self, docs: Sequence[StoredDocument]) -> None:
        """Insert documents, or reactivate and re-price existing (client, id) rows."""
        if not docs:
            return
        for doc in docs:
            key = (doc.client_name, doc.document_id)
            old = self._rows.get(key)
            if old is None:
                self._rows[key] = replace(doc, retired_at=None, created_at=_now())
            else:
                self._rows[key] = replace(
                    old, retired_at=None, cost=doc.cost, operation_name=doc.operation_name
                )
        self._version += 1

    async def retire(self, client_name: str, ids: Collection[str]) -> list[str]:
        """Retire the active documents among ``ids``; return the ids retired."""
        now = _now()
        retired = []
        for document_id in sorted(set(ids)):
            row = self._rows.get((client_name, document_id))
            if row is not None and row.retired_at is None:
                self._rows[(client_name, document_id)] = replace(row, retired_at=now)
                retired.append(document_id)
        if retired:
            self._version += 1
        return retired

    async def version(self) -> int:
        """Return the registry version, which grows with every change."""
        return self._version


class SQLStore:
    """The durable store on SQLAlchemy Core (SQLite or PostgreSQL), shared by every worker.

    Expects ``persisted_documents`` and ``persisted_documents_version`` to exist (the
    application's migrations create them; ``create_tables`` does it for tests and demos).
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        dialect = engine.dialect.name
        if dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"SQLStore supports SQLite and PostgreSQL, not {dialect}")
        self._insert: Any = sqlite.insert if dialect == "sqlite" else postgresql.insert

    async def lookup(self, client_names: Sequence[str], key: str) -> StoredDocument | None:
        """Return the active document of the first client whose id (then sha256) is ``key``."""
        match = DOCUMENTS.c.document_id == key
        if is_sha256(key):
            match = sa.or_(match, DOCUMENTS.c.sha256 == key)
        query = sa.select(DOCUMENTS).where(
            DOCUMENTS.c.client_name.in_(list(client_names)),
            DOCUMENTS.c.retired_at.is_(None),
            match,
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return pick([_row(row) for row in rows], client_names, key)

    async def documents(
        self,
        client_name: str | None,
        *,
        ids: Collection[str] | None = None,
        include_retired: bool = False,
    ) -> list[StoredDocument]:
        """Return a client's documents (every client's for None), sorted by client and id."""
        query = sa.select(DOCUMENTS)
        if client_name is not None:
            query = query.where(DOCUMENTS.c.client_name == client_name)
        if not include_retired:
            query = query.where(DOCUMENTS.c.retired_at.is_(None))
        if ids is None:
            queries = [query]
        else:
            queries = [query.where(DOCUMENTS.c.document_id.in_(chunk)) for chunk in _chunks(ids)]
        rows: list[Any] = []
        async with self._engine.connect() as conn:
            for each in queries:
                rows.extend((await conn.execute(each)).mappings().all())
        # Sorted here, not in SQL: collations differ between databases; code points do not.
        return sorted((_row(row) for row in rows), key=lambda d: (d.client_name, d.document_id))

    async def save(self, docs: Sequence[StoredDocument]) -> None:
        """Insert documents, or reactivate and re-price existing (client, id) rows."""
        if not docs:
            return
        now = _now()
        stmt = self._insert(DOCUMENTS)
        stmt = stmt.on_conflict_do_update(
            index_elements=[DOCUMENTS.c.client_name, DOCUMENTS.c.document_id],
            set_={
                "retired_at": None,
                "cost": stmt.excluded.cost,
                "operation_name": stmt.excluded.operation_name,
            },
        )
        values = [
            {
                "id": _new_id(),
                "client_name": doc.client_name,
                "document_id": doc.document_id,
                "sha256": doc.sha256,
                "body": doc.body,
                "operation_name": doc.operation_name,
                "cost": doc.cost,
                "retired_at": None,
                "created_at": now,
            }
            for doc in docs
        ]
        async with self._engine.begin() as conn:
            await conn.execute(stmt, values)
            await self._bump(conn)

    async def retire(self, client_name: str, ids: Collection[str]) -> list[str]:
        """Retire the active documents among ``ids``; return the ids retired."""
        found: list[str] = []
        async with self._engine.begin() as conn:
            for chunk in _chunks(ids):
                where = (
                    DOCUMENTS.c.client_name == client_name,
                    DOCUMENTS.c.document_id.in_(chunk),
                    DOCUMENTS.c.retired_at.is_(None),
                )
                query = sa.select(DOCUMENTS.c.document_id).where(*where)
                active = (await conn.execute(query)).scalars().all()
                if active:
                    await conn.execute(sa.update(DOCUMENTS).where(*where).values(retired_at=_now()))
                    found.extend(active)
            if found:
                await self._bump(conn)
        return sorted(found)

    async def version(self) -> int:
        """Return the registry version, which grows with every change."""
        async with self._engine.connect() as conn:
            value = await conn.scalar(sa.select(VERSIONS.c.version).where(VERSIONS.c.id == 1))
        return int(value or 0)

    async def _bump(self, conn: Any) -> None:
        # An upsert rather than UPDATE-then-INSERT: two first writers cannot both insert row 1.
        stmt = self._insert(VERSIONS).values(id=1, version=1)
        stmt = stmt.on_conflict_do_update(
            index_elements=[VERSIONS.c.id], set_={"version": VERSIONS.c.version + 1}
        )
        await conn.execute(stmt)


async def create_tables(engine: AsyncEngine) -> None:
    """Create this package's two tables if missing (tests and demos; production migrates)."""
    async with engine.begin() as conn:
        await conn.run_sync(METADATA.create_all)


def _chunks(ids: Collection[str], size: int = 500) -> list[list[str]]:
    # Bounded IN lists: SQLite and asyncpg cap the number of bound parameters per statement.
    unique = sorted(set(ids))
    return [unique[i : i + size] for i in range(0, len(unique), size)]


def _new_id() -> uuid.UUID:
    return uuid_utils.compat.uuid7()


def _row(row: Any) -> StoredDocument:
    return StoredDocument(
        client_name=row["client_name"],
        document_id=row["document_id"],
        sha256=row["sha256"],
        body=row["body"],
        operation_name=row["operation_name"],
        cost=row["cost"],
        retired_at=row["retired_at"],
        created_at=row["created_at"],
    )


class Cache(Protocol):
    """A shared key-value cache with per-entry time to live; failures must not raise."""

    async def get(self, key: str) -> bytes | None:
        """Return the value, or None when missing, expired or unreachable."""
        ...

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        """Store ``value`` for ``ttl`` seconds."""
        ...


class MemoryCache:
    """A bounded in-process LRU cache with per-entry expiry (no Redis configured)."""

    def __init__(self, maxsize: int = 10_000) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self._maxsize = maxsize
        self._data: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    async def get(self, key: str) -> bytes | None:
        """Return the value, or None when missing or expired."""
        item = self._data.get(key)
        if item is None:
            return None
        deadline, value = item
        if deadline <= time.monotonic():
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return value

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        """Store ``value`` for ``ttl`` seconds, evicting the least recently used beyond maxsize."""
        self._data[key] = (time.monotonic() + ttl, value)
        self._data.move_to_end(key)
        while len(self._data) > self._maxsize:
            self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)


class RedisCache:
    """A cache shared by every worker and host, in Redis; errors degrade to misses.

    Args:
        client: a ``redis.asyncio.Redis`` (either ``decode_responses`` setting).
        prefix: namespace of every key this cache writes.
        timeout: seconds allowed per command before it counts as a miss.
    """

    def __init__(self, client: Any, *, prefix: str = "tollgate:pq:", timeout: float = 0.25) -> None:
        self._client = client
        self._prefix = prefix
        self._timeout = timeout

    async def get(self, key: str) -> bytes | None:
        """Return the value, or None when missing, expired or Redis is unreachable."""
        try:
            value = await asyncio.wait_for(self._client.get(self._prefix + key), self._timeout)
        except Exception as exc:  # a cache outage must never fail a request
            logger.warning("persisted-query cache read failed: %r", exc)
            return None
        if value is None:
            return None
        return value.encode() if isinstance(value, str) else bytes(value)

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        """Store ``value`` for ``ttl`` seconds; a Redis failure is logged and ignored."""
        try:
            await asyncio.wait_for(
                self._client.set(self._prefix + key, value, px=max(1, int(ttl * 1000))),
                self._timeout,
            )
        except Exception as exc:  # a cache outage must never fail a request
            logger.warning("persisted-query cache write failed: %r", exc)
