"""Per-request DataLoaders: every relation is fetched in batches, values in key order."""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Generic, TypeVar, overload

from aiodataloader import DataLoader
from sqlalchemy import Table, bindparam, func, select

from database import models
from database.reader import Prepared, keys_in
from loaders.pages import (
    Page,
    PageArgs,
    count_per_parent_statement,
    page_params,
    per_parent_statement,
    read_columns,
    to_page,
)
from loaders.session import RequestDb

Row = Any

TENANTS: Table = models.Tenant.__table__  # type: ignore[assignment]
USERS: Table = models.User.__table__  # type: ignore[assignment]
PRODUCTS: Table = models.Product.__table__  # type: ignore[assignment]
ORDERS: Table = models.Order.__table__  # type: ignore[assignment]
ORDER_ITEMS: Table = models.OrderItem.__table__  # type: ignore[assignment]
REVIEWS: Table = models.Review.__table__  # type: ignore[assignment]

BatchHook = Callable[[str, int], None]
L = TypeVar("L", bound="_TenantLoader")


def _noop_hook(name: str, size: int) -> None:
    return None


async def _collect(futures: list[asyncio.Future[Any]]) -> list[Any]:
    """The futures' values in order; waiting through a shield (see ``_TenantLoader.load``)."""
    out = []
    for future in futures:
        if not future.done():
            await asyncio.shield(future)
        out.append(future.result())
    return out


def _read(future: asyncio.Future[Any]) -> None:
    """Mark a shared future's outcome as retrieved (its waiters may all be gone)."""
    if not future.cancelled():
        future.exception()


class _TenantLoader(DataLoader):  # type: ignore[misc]
    """Base: holds the request's database handle and reports batch sizes."""

    def __init__(self, db: RequestDb, on_batch: BatchHook = _noop_hook) -> None:
        super().__init__()
        self.db = db
        self.on_batch = on_batch

    def load(self, key: Any) -> Any:
        """The shared future, shielded: one cancelled waiter must not cancel it for all.

        When a field error nulls a parent, graphql-core cancels the sibling fields still
        running; a sibling awaiting a value another branch shares would otherwise cancel the
        shared future and the other branch would receive CancelledError. The shared future is
        always read (``_read``): a batch that fails after every waiter was cancelled must not
        leave asyncio to log "Future exception was never retrieved".
        """
        inner = super().load(key)
        inner.add_done_callback(_read)
        return asyncio.shield(inner)

    def load_many(self, keys: Iterable[Any]) -> Any:
        """Values for ``keys`` in order (the batched executor's call: a whole level's keys).

        The keys nobody asked for yet are fetched at once, in ONE batch of their own, run as
        a task of its own (so a cancelled caller does not cancel it for others) and entered
        in the loader's cache as futures before it starts: a ``load`` of the same key, now or
        later in the request, waits for this batch instead of fetching again. Keys already
        cached are served from their futures. There is no future per key and no ``gather``
        (a page's items name the same products many times over).
        """
        keys = list(keys)
        cache = self._cache
        found: dict[Any, asyncio.Future[Any]] = {}
        missing: list[Any] = []
        for key in dict.fromkeys(keys):
            future = cache.get(key)
            if future is None:
                missing.append(key)
            else:
                found[key] = future
        if missing:
            create = self.loop.create_future
            futures = [create() for _ in missing]
            for key, future in zip(missing, futures, strict=True):
                future.add_done_callback(_read)
                cache[key] = found[key] = future
            task = asyncio.ensure_future(self._fill(missing, futures))
            task.add_done_callback(_read)
        return _collect([found[key] for key in keys])

    async def _fill(self, keys: list[Any], futures: list[asyncio.Future[Any]]) -> None:
        try:
            values = await self.batch_load_fn(keys)
            if len(values) != len(keys):
                raise RuntimeError(f"{type(self).__name__}: {len(values)} values for {len(keys)}")
        except Exception as error:
            for key, future in zip(keys, futures, strict=True):
                if self._cache.get(key) is future:
                    del self._cache[key]  # a later load may try again, as aiodataloader does
                if not future.done():
                    future.set_exception(error)
            return
        except BaseException:
            for future in futures:
                future.cancel()
            raise
        for future, value in zip(futures, values, strict=True):
            if not future.done():
                future.set_result(value)

    def params(self, keys: Iterable[Any]) -> dict[str, Any]:
        """Parameters of the by-key statements: this tenant and the distinct keys."""
        return {"scope_tenant_id": self.db.tenant_id, "keys": list(set(keys))}


# The by-key statements are built once, with the keys as ONE parameter (an array on
# PostgreSQL, a JSON array on SQLite): one SQL text, compiled and prepared once.


@functools.cache
def by_id_statement(table: Table) -> Prepared:
    return Prepared(
        select(*read_columns(table)).where(
            table.c.tenant_id == bindparam("scope_tenant_id"), keys_in(table.c.id)
        )
    )


@functools.cache
def items_statement() -> Prepared:
    return Prepared(
        select(*read_columns(ORDER_ITEMS))
        .where(
            ORDER_ITEMS.c.tenant_id == bindparam("scope_tenant_id"),
            keys_in(ORDER_ITEMS.c.order_id),
        )
        .order_by(ORDER_ITEMS.c.order_id, ORDER_ITEMS.c.position)
    )


@functools.cache
def average_rating_statement() -> Prepared:
    return Prepared(
        select(REVIEWS.c.product_id, func.avg(REVIEWS.c.rating))
        .where(REVIEWS.c.tenant_id == bindparam("scope_tenant_id"), keys_in(REVIEWS.c.product_id))
        .group_by(REVIEWS.c.product_id)
    )


class _ByIdLoader(_TenantLoader):
    table: Table

    async def batch_load_fn(self, keys: Sequence[uuid.UUID]) -> list[Row | None]:
        self.on_batch(type(self).__name__, len(keys))
        rows = await self.db.rows(by_id_statement(self.table), self.params(keys))
        by_id = {row.id: row for row in rows}
        return [by_id.get(key) for key in keys]


class UserByIdLoader(_ByIdLoader):
    table = USERS


class ProductByIdLoader(_ByIdLoader):
    table = PRODUCTS


class OrderByIdLoader(_ByIdLoader):
    table = ORDERS


class ReviewByIdLoader(_ByIdLoader):
    table = REVIEWS


class OrderItemsByOrderIdLoader(_TenantLoader):
    async def batch_load_fn(self, keys: Sequence[uuid.UUID]) -> list[list[Row]]:
        self.on_batch(type(self).__name__, len(keys))
        rows = await self.db.rows(items_statement(), self.params(keys))
        grouped: dict[uuid.UUID, list[Row]] = defaultdict(list)
        for row in rows:
            grouped[row.order_id].append(row)
        return [grouped.get(key, []) for key in keys]


class AverageRatingByProductIdLoader(_TenantLoader):
    async def batch_load_fn(self, keys: Sequence[uuid.UUID]) -> list[float | None]:
        self.on_batch(type(self).__name__, len(keys))
        rows = await self.db.rows(average_rating_statement(), self.params(keys))
        averages = {row[0]: round(float(row[1]), 2) for row in rows}  # type: ignore[misc]
        return [averages.get(key) for key in keys]


class _PageByParentLoader(_TenantLoader):
    """Keys are (parent id, PageArgs); one statement per distinct PageArgs in a batch."""

    table: Table
    parent_col: str

    async def batch_load_fn(self, keys: Sequence[tuple[uuid.UUID, PageArgs]]) -> list[Page]:
        self.on_batch(type(self).__name__, len(keys))
        by_args: dict[PageArgs, set[uuid.UUID]] = defaultdict(set)
        for parent_id, args in keys:
            by_args[args].add(parent_id)
        pages: dict[tuple[uuid.UUID, PageArgs], Page] = {}
        for args, parent_ids in by_args.items():
            params = page_params(args, {"tenant_id": self.db.tenant_id})
            params["keys"] = list(parent_ids)  # one array parameter: order changes nothing
            rows = await self.db.rows(
                per_parent_statement(self.table, self.parent_col, args.shape), params
            )
            grouped: dict[uuid.UUID, list[Row]] = defaultdict(list)
            for row in rows:
                grouped[getattr(row, self.parent_col)].append(row)
            for parent_id in parent_ids:
                pages[(parent_id, args)] = to_page(grouped.get(parent_id, []), args)
        return [pages[key] for key in keys]


class _CountByParentLoader(_TenantLoader):
    """Keys are (parent id, filters); one GROUP BY statement per distinct filter set."""

    table: Table
    parent_col: str

    async def batch_load_fn(
        self, keys: Sequence[tuple[uuid.UUID, tuple[tuple[str, Any], ...]]]
    ) -> list[int]:
        self.on_batch(type(self).__name__, len(keys))
        by_filters: dict[tuple[tuple[str, Any], ...], set[uuid.UUID]] = defaultdict(set)
        for parent_id, filters in keys:
            by_filters[filters].add(parent_id)
        counts: dict[tuple[uuid.UUID, tuple[tuple[str, Any], ...]], int] = {}
        for filters, parent_ids in by_filters.items():
            params = page_params(PageArgs(1, filters=filters), {"tenant_id": self.db.tenant_id})
            params["keys"] = list(parent_ids)  # one array parameter: order changes nothing
            stmt = count_per_parent_statement(
                self.table, self.parent_col, tuple(n for n, _ in filters)
            )
            rows = await self.db.rows(stmt, params)
            found = {row[1]: row[0] for row in rows}  # type: ignore[misc]
            for parent_id in parent_ids:
                counts[(parent_id, filters)] = found.get(parent_id, 0)
        return [counts[key] for key in keys]


class OrdersByCustomerIdLoader(_PageByParentLoader):
    table, parent_col = ORDERS, "customer_id"


class ReviewsByProductIdLoader(_PageByParentLoader):
    table, parent_col = REVIEWS, "product_id"


class ReviewsByAuthorIdLoader(_PageByParentLoader):
    table, parent_col = REVIEWS, "author_id"


class OrderCountByCustomerIdLoader(_CountByParentLoader):
    table, parent_col = ORDERS, "customer_id"


class ReviewCountByProductIdLoader(_CountByParentLoader):
    table, parent_col = REVIEWS, "product_id"


class ReviewCountByAuthorIdLoader(_CountByParentLoader):
    table, parent_col = REVIEWS, "author_id"


class _Lazy(Generic[L]):
    """A loader of the bundle made on first use: most operations touch two or three of them,
    and a DataLoader costs a few microseconds to make."""

    def __init__(self, kind: type[L]) -> None:
        self.kind = kind
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, bundle: None, owner: type) -> _Lazy[L]: ...
    @overload
    def __get__(self, bundle: Loaders, owner: type) -> L: ...
    def __get__(self, bundle: Loaders | None, owner: type) -> _Lazy[L] | L:
        if bundle is None:
            return self
        loader = self.kind(bundle.db, bundle.on_batch)
        bundle.__dict__[self.name] = loader  # later reads find the instance's own attribute
        return loader


class Loaders:
    """A fresh bundle of loaders for one request (their caches must not outlive it)."""

    user = _Lazy(UserByIdLoader)
    product = _Lazy(ProductByIdLoader)
    order = _Lazy(OrderByIdLoader)
    review = _Lazy(ReviewByIdLoader)
    order_items = _Lazy(OrderItemsByOrderIdLoader)
    average_rating = _Lazy(AverageRatingByProductIdLoader)
    orders_by_customer = _Lazy(OrdersByCustomerIdLoader)
    reviews_by_product = _Lazy(ReviewsByProductIdLoader)
    reviews_by_author = _Lazy(ReviewsByAuthorIdLoader)
    order_count_by_customer = _Lazy(OrderCountByCustomerIdLoader)
    review_count_by_product = _Lazy(ReviewCountByProductIdLoader)
    review_count_by_author = _Lazy(ReviewCountByAuthorIdLoader)

    def __init__(self, db: RequestDb, on_batch: BatchHook = _noop_hook) -> None:
        self.db = db
        self.on_batch = on_batch

    def clear_all(self) -> None:
        """Forget every cached value (after a write, reads must see the new state)."""
        for loader in vars(self).values():
            if isinstance(loader, DataLoader):
                loader.clear_all()

    def prime_rows(self, loader: DataLoader, rows: Sequence[Row]) -> None:
        """Seed a by-id loader with rows a page query already fetched."""
        for row in rows:
            loader.prime(row.id, row)
