"""Opaque global ids and pagination cursors.

Global ids are base64url of ``Type:uuid-hex``; cursors are base64url of a JSON pair
``[sort value, id hex]``. Clients must not parse either; anything malformed is
``BAD_USER_INPUT``.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import uuid
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from resolvers.errors import BadUserInput, UserErrorCode, UserFailure

NODE_TYPES = frozenset({"User", "Product", "Order", "Review", "OrderItem"})


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    if not isinstance(text, str) or len(text) > 512:
        raise ValueError("bad length")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


_GLOBAL_IDS: dict[tuple[str, int], str] = {}
_GLOBAL_IDS_LIMIT = 1 << 15  # emptied when full: a bound, not an eviction policy


def to_global_id(type_name: str, key: uuid.UUID) -> str:
    """``base64url("Type:hex")``, remembered: a page repeats the ids of the page before."""
    cache_key = (type_name, key.int)
    found = _GLOBAL_IDS.get(cache_key)
    if found is None:
        found = _b64encode(f"{type_name}:{key.hex}".encode())
        if len(_GLOBAL_IDS) >= _GLOBAL_IDS_LIMIT:
            _GLOBAL_IDS.clear()
        _GLOBAL_IDS[cache_key] = found
    return found


def from_global_id(global_id: str, expected: str | None = None) -> tuple[str, uuid.UUID]:
    """Decode a global id; raise ``BadUserInput`` when it is not one of ours."""
    try:
        type_name, _, hex_id = _b64decode(global_id).decode("ascii").partition(":")
        key = uuid.UUID(hex=hex_id)
    except (ValueError, UnicodeDecodeError, binascii.Error) as exc:
        raise BadUserInput("Malformed id.", argument="id") from exc
    if type_name != expected if expected is not None else type_name not in NODE_TYPES:
        raise BadUserInput("Malformed id.", argument="id")
    return type_name, key


def input_id(global_id: str, type_name: str, field: list[str]) -> uuid.UUID:
    """The key of a ``type_name`` id given as a mutation's input; a user error otherwise."""
    try:
        return from_global_id(global_id, type_name)[1]
    except BadUserInput as exc:
        raise UserFailure(
            UserErrorCode.INVALID_INPUT, f"Not a valid {type_name} id.", field
        ) from exc


def encode_cursor(sort_value: Any, key: uuid.UUID) -> str:
    if isinstance(sort_value, dt.datetime):
        sort_value = sort_value.isoformat()
    elif isinstance(sort_value, Decimal):
        sort_value = str(sort_value)
    return _b64encode(orjson.dumps([sort_value, key.hex]))


def decode_cursor(cursor: str, sort: str) -> tuple[Any, uuid.UUID]:
    """Decode a cursor made for the sort column ``sort``; ``BadUserInput`` otherwise."""
    try:
        value, hex_id = orjson.loads(_b64decode(cursor))
        key = uuid.UUID(hex=hex_id)
        if sort in ("created_at",):
            parsed: Any = dt.datetime.fromisoformat(value)
        elif sort in ("total", "price"):
            parsed = Decimal(value)
            if not parsed.is_finite():
                raise ValueError("not finite")
        elif isinstance(value, str):
            parsed = value
        else:
            raise ValueError("bad sort value")
    except (ValueError, TypeError, InvalidOperation, binascii.Error, orjson.JSONDecodeError) as exc:
        raise BadUserInput("Malformed cursor.", argument="after") from exc
    return parsed, key
