"""Keyset pagination shared by root connections and per-parent connections."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, Table, and_, func, or_, select
from sqlalchemy.engine import Row


@dataclass(frozen=True, slots=True)
class PageArgs:
    """A page request: size, sort column and direction, the cursor's position, filters."""

    first: int
    sort: str = "created_at"
    desc: bool = True
    after: tuple[Any, Any] | None = None
    filters: tuple[tuple[str, Any], ...] = ()


@dataclass(slots=True)
class Page:
    """Rows of one page, and whether more follow."""

    rows: Sequence[Row[Any]]
    has_next: bool
    has_previous: bool


@functools.cache
def read_columns(table: Table) -> tuple[ColumnElement[Any], ...]:
    """Every column but ``tenant_id``: it is the caller's tenant, already in the WHERE clause,
    and not reading it spares a UUID per row."""
    return tuple(column for column in table.c if column.name != "tenant_id")


def where_filters(table: Table, filters: tuple[tuple[str, Any], ...]) -> list[ColumnElement[bool]]:
    return [table.c[name] == value for name, value in filters]


def keyset(table: Table, args: PageArgs) -> list[ColumnElement[bool]]:
    if args.after is None:
        return []
    sort_col, id_col = table.c[args.sort], table.c.id
    value, last_id = args.after
    if args.desc:
        return [or_(sort_col < value, and_(sort_col == value, id_col < last_id))]
    return [or_(sort_col > value, and_(sort_col == value, id_col > last_id))]


def ordering(table: Table, args: PageArgs) -> list[Any]:
    sort_col, id_col = table.c[args.sort], table.c.id
    if args.desc:
        return [sort_col.desc(), id_col.desc()]
    return [sort_col.asc(), id_col.asc()]


def page_statement(
    table: Table, conditions: list[ColumnElement[bool]], args: PageArgs
) -> Select[Any]:
    """SELECT one page (plus one row to tell whether a next page exists)."""
    return (
        select(*read_columns(table))
        .where(*conditions, *where_filters(table, args.filters), *keyset(table, args))
        .order_by(*ordering(table, args))
        .limit(args.first + 1)
    )


def per_parent_statement(
    table: Table,
    parent_col: str,
    parent_ids: Sequence[Any],
    conditions: list[ColumnElement[bool]],
    args: PageArgs,
) -> Select[Any]:
    """One statement that returns the first page of every parent (a window function)."""
    rank = (
        func.row_number()
        .over(partition_by=table.c[parent_col], order_by=ordering(table, args))
        .label("_rank")
    )
    inner = (
        select(*read_columns(table), rank)
        .where(
            table.c[parent_col].in_(parent_ids),
            *conditions,
            *where_filters(table, args.filters),
            *keyset(table, args),
        )
        .subquery()
    )
    return (
        select(inner)
        .where(inner.c._rank <= args.first + 1)
        .order_by(inner.c[parent_col], inner.c._rank)
    )


def to_page(rows: Sequence[Row[Any]], args: PageArgs) -> Page:
    return Page(
        rows=rows[: args.first],
        has_next=len(rows) > args.first,
        has_previous=args.after is not None,
    )


def count_statement(
    table: Table, conditions: list[ColumnElement[bool]], args: PageArgs
) -> Select[Any]:
    return (
        select(func.count())
        .select_from(table)
        .where(*conditions, *where_filters(table, args.filters))
    )
