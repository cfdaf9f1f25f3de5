"""Keyset pagination shared by root connections and per-parent connections.

Every statement is built once per *shape* (table, scope columns, sort, direction, whether a
cursor is given, filter columns) with named parameters only, and wrapped in a
:class:`~database.reader.Prepared`: its SQL text is compiled once per dialect and the values
of a request travel as parameters (:func:`page_params`). Parameter names: ``scope_<column>``
for the caller's scope (the tenant first), ``filter_<column>``, ``after_value``/``after_id``
for the cursor, ``limit``, ``search`` and ``keys`` (parent ids, one list parameter).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Integer, Table, and_, bindparam, func, or_, select

from database.reader import Prepared, keys_in


@dataclass(frozen=True, slots=True)
class PageArgs:
    """A page request: size, sort column and direction, the cursor's position, filters."""

    first: int
    sort: str = "created_at"
    desc: bool = True
    after: tuple[Any, Any] | None = None
    filters: tuple[tuple[str, Any], ...] = ()

    @property
    def shape(self) -> tuple[str, bool, bool, tuple[str, ...]]:
        """What the SQL text depends on: sort, direction, cursor or not, filter columns."""
        return self.sort, self.desc, self.after is not None, tuple(n for n, _ in self.filters)


@dataclass(slots=True)
class Page:
    """Rows of one page, and whether more follow."""

    rows: Sequence[Any]
    has_next: bool
    has_previous: bool


@functools.cache
def read_columns(table: Table) -> tuple[ColumnElement[Any], ...]:
    """Every column but ``tenant_id``: it is the caller's tenant, already in the WHERE clause,
    and not reading it spares a UUID per row."""
    return tuple(column for column in table.c if column.name != "tenant_id")


def _scope(table: Table, scope: tuple[str, ...]) -> list[ColumnElement[bool]]:
    return [table.c[name] == bindparam(f"scope_{name}") for name in scope]


def _filters(table: Table, names: tuple[str, ...]) -> list[ColumnElement[bool]]:
    return [table.c[name] == bindparam(f"filter_{name}") for name in names]


def _search(table: Table, column: str | None) -> list[ColumnElement[bool]]:
    if column is None:
        return []
    return [func.lower(table.c[column]).like(bindparam("search"), escape="/")]


def _keyset(table: Table, sort: str, desc: bool, after: bool) -> list[ColumnElement[bool]]:
    if not after:
        return []
    sort_col, id_col = table.c[sort], table.c.id
    value = bindparam("after_value", type_=sort_col.type)
    last_id: Any = bindparam("after_id")
    if desc:
        return [or_(sort_col < value, and_(sort_col == value, id_col < last_id))]
    return [or_(sort_col > value, and_(sort_col == value, id_col > last_id))]


def ordering(table: Table, sort: str, desc: bool) -> list[Any]:
    sort_col, id_col = table.c[sort], table.c.id
    if desc:
        return [sort_col.desc(), id_col.desc()]
    return [sort_col.asc(), id_col.asc()]


def search_pattern(term: str) -> str:
    """``%term%`` for ``lower(column) LIKE ... ESCAPE '/'``, the term's wildcards escaped."""
    escaped = term.lower().replace("/", "//").replace("%", "/%").replace("_", "/_")
    return f"%{escaped}%"


def page_params(args: PageArgs, scope: dict[str, Any], search: str | None = None) -> dict[str, Any]:
    """The parameters of a page or count statement for ``args`` within ``scope``."""
    params = {f"scope_{name}": value for name, value in scope.items()}
    for name, value in args.filters:
        params[f"filter_{name}"] = value
    if args.after is not None:
        params["after_value"], params["after_id"] = args.after
    params["limit"] = args.first + 1
    if search is not None:
        params["search"] = search_pattern(search)
    return params


@functools.cache
def page_statement(
    table: Table,
    scope: tuple[str, ...],
    shape: tuple[str, bool, bool, tuple[str, ...]],
    search: str | None = None,
) -> Prepared:
    """SELECT one page (plus one row to tell whether a next page exists)."""
    sort, desc, after, filters = shape
    return Prepared(
        select(*read_columns(table))
        .where(
            *_scope(table, scope),
            *_filters(table, filters),
            *_search(table, search),
            *_keyset(table, sort, desc, after),
        )
        .order_by(*ordering(table, sort, desc))
        .limit(bindparam("limit", type_=Integer))
    )


@functools.cache
def count_statement(
    table: Table,
    scope: tuple[str, ...],
    filters: tuple[str, ...],
    search: str | None = None,
) -> Prepared:
    """How many rows match (the cursor and the page size do not count)."""
    return Prepared(
        select(func.count())
        .select_from(table)
        .where(*_scope(table, scope), *_filters(table, filters), *_search(table, search))
    )


@functools.cache
def per_parent_statement(
    table: Table, parent_col: str, shape: tuple[str, bool, bool, tuple[str, ...]]
) -> Prepared:
    """One statement that returns the first page of every parent in ``keys`` (a window
    function), within ``scope_tenant_id``."""
    sort, desc, after, filters = shape
    rank = (
        func.row_number()
        .over(partition_by=table.c[parent_col], order_by=ordering(table, sort, desc))
        .label("_rank")
    )
    inner = (
        select(*read_columns(table), rank)
        .where(
            keys_in(table.c[parent_col]),
            *_scope(table, ("tenant_id",)),
            *_filters(table, filters),
            *_keyset(table, sort, desc, after),
        )
        .subquery()
    )
    return Prepared(
        select(inner)
        .where(inner.c._rank <= bindparam("limit", type_=Integer))
        .order_by(inner.c[parent_col], inner.c._rank)
    )


@functools.cache
def count_per_parent_statement(table: Table, parent_col: str, filters: tuple[str, ...]) -> Prepared:
    """``(count, parent)`` for every parent in ``keys`` that has matching rows."""
    parent = table.c[parent_col]
    return Prepared(
        select(func.count(), parent)
        .where(keys_in(parent), *_scope(table, ("tenant_id",)), *_filters(table, filters))
        .group_by(parent)
    )


def to_page(rows: Sequence[Any], args: PageArgs) -> Page:
    return Page(
        rows=rows[: args.first],
        has_next=len(rows) > args.first,
        has_previous=args.after is not None,
    )
