"""``DateTime`` (ISO-8601 UTC with ``Z``) and ``Decimal`` (exact, as a string)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Any

import strawberry
from graphql import GraphQLError

_ZERO = dt.timedelta(0)


def _serialize_datetime(value: dt.datetime) -> str:
    """ISO 8601 in UTC with a ``Z``; a naive value is UTC (SQLite stores naive UTC)."""
    offset = value.utcoffset()
    if offset is None:
        return value.isoformat() + "Z"
    if offset != _ZERO:
        value = value.astimezone(dt.UTC)
    return value.replace(tzinfo=None).isoformat() + "Z"


def _parse_datetime(value: Any) -> dt.datetime:
    if not isinstance(value, str):
        raise GraphQLError("DateTime must be an ISO-8601 string.")
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise GraphQLError("DateTime must be an ISO-8601 string.") from exc
    if parsed.tzinfo is None:
        raise GraphQLError("DateTime must carry a time zone.")
    return parsed.astimezone(dt.UTC)


def _serialize_decimal(value: Decimal) -> str:
    return format(value, "f")


def _parse_decimal(value: Any) -> Decimal:
    if not isinstance(value, str | int) or isinstance(value, bool) or len(str(value)) > 40:
        raise GraphQLError('Decimal must be a string such as "19.99".')
    try:
        parsed = Decimal(str(value))
    except InvalidOperation as exc:
        raise GraphQLError('Decimal must be a string such as "19.99".') from exc
    if not parsed.is_finite():
        raise GraphQLError("Decimal must be finite.")
    return parsed


DateTime = strawberry.scalar(
    name="DateTime",
    description="ISO-8601 instant in UTC, e.g. 2026-11-22T10:15:00Z.",
    serialize=_serialize_datetime,
    parse_value=_parse_datetime,
)

DecimalScalar = strawberry.scalar(
    name="Decimal",
    description='Exact decimal amount as a string, e.g. "19.99".',
    serialize=_serialize_decimal,
    parse_value=_parse_decimal,
)

SCALAR_MAP: dict[object, Any] = {dt.datetime: DateTime, Decimal: DecimalScalar}
