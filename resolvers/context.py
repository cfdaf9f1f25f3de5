"""What every resolver receives: the caller, the tenant-scoped database and the loaders."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from auth import Principal
from database.engine import tenant_transaction
from loaders import Loaders, RequestDb
from resolvers.errors import Unauthenticated


@dataclass(slots=True)
class RateLimitInfo:
    """The figures the ``rateLimit`` field shows, filled in by the server before execution."""

    limit: int
    cost: int
    remaining: int
    restore_rate: float
    reset_at: dt.datetime
    node_count: int


@dataclass(slots=True)
class RequestContext:
    """Per-request state shared by every resolver of one operation."""

    principal: Principal
    engine: AsyncEngine
    db: RequestDb
    loaders: Loaders
    request_id: str = ""
    production: bool = False
    max_page_size: int = 100
    rate_limit: RateLimitInfo | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # What this request's writes changed, as response-cache tags ("Product:<hex>",
    # "Order:list", "*"): the server invalidates them before the response is sent.
    cache_tags: set[str] = field(default_factory=set)

    @property
    def tenant_id(self) -> uuid.UUID | None:
        return self.principal.tenant_id

    def require_user(self) -> uuid.UUID:
        """The caller's user id; ``UNAUTHENTICATED`` for anonymous callers."""
        user_id = self.principal.user_id
        if self.principal.anonymous or user_id is None or self.principal.tenant_id is None:
            raise Unauthenticated("Authentication required.")
        return user_id

    def touched(
        self, type_name: str, *keys: uuid.UUID, lists: bool = False, fields: bool = True
    ) -> None:
        """Record writes to entities of ``type_name`` (and, with ``lists``, to its lists).

        ``fields=False``: only lists below these entities changed (their own fields did not).
        """
        if keys and fields:
            self.cache_tags.add(type_name)
        self.cache_tags.update(f"{type_name}:{key.hex}" for key in keys)
        if lists:
            self.cache_tags.add(f"{type_name}:list")

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """One write transaction in the caller's tenant; afterwards the request's reads see
        its effects (the read transaction is closed first, the loaders cleared after)."""
        tenant_id = self.require_tenant()
        await self.db.close()
        try:
            async with (
                self.db.guarded(),
                tenant_transaction(self.engine, tenant_id, write=True) as conn,
            ):
                yield conn
        finally:
            self.loaders.clear_all()

    def require_tenant(self) -> uuid.UUID:
        tenant_id = self.principal.tenant_id
        if self.principal.anonymous or tenant_id is None:
            raise Unauthenticated("Authentication required.")
        return tenant_id
