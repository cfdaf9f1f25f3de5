"""Configured limits, each with a mode (enforce, measure, off), and the check that applies one.

Defaults admit every operation in ``contract/operations/`` with ``first`` up to 100 (cost of
OrdersPage: 4,062 at ``first: 20``, 10,152 at 50, 20,302 at 100) and GraphiQL's full
introspection query, and refuse the hostile documents of the attack list (T6-T12):

==========================  =========  ===============================================
limit                       default    what is counted
==========================  =========  ===============================================
``max_bytes``               65,536     UTF-8 bytes of the document text
``max_tokens``              4,000      lexical tokens incl. comments (graphql-core)
``max_depth``               15         fields on the longest path, fragments expanded
``max_aliases``             30         aliased fields after fragment expansion
``max_directives``          50         directive uses after fragment expansion
``max_root_fields``         10         root fields after fragment expansion
``max_mutation_fields``     5          root fields of a mutation operation
``max_fields``              1,000      field nodes after fragment expansion
``max_selection_fields``    100        fields of one selection set, fragments merged
``max_fragment_expansion``  2,000      selections added by expanding fragment spreads
``max_cost``                25,000     requested (static) cost of the operation
``max_nodes``               100,000    objects the operation may return
``max_batch``               10         operations in one HTTP batch
==========================  =========  ===============================================

The structural limits are measured over the whole document (every operation and fragment),
because graphql-core validates all of it, selected operation or not.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from guards.errors import GuardError

__all__ = [
    "LIMIT_CODES",
    "Limit",
    "Limits",
    "Mode",
    "apply_limit",
    "check_batch",
    "limit_error",
]


class Mode(StrEnum):
    """What a limit does when exceeded: refuse, only record, or nothing."""

    ENFORCE = "enforce"
    MEASURE = "measure"
    OFF = "off"


@dataclass(frozen=True)
class Limit:
    """One limit: its value and its mode."""

    value: int
    mode: Mode = Mode.ENFORCE


# limit name -> (error code, what the message says is counted)
LIMIT_CODES: dict[str, tuple[str, str]] = {
    "max_bytes": ("DOCUMENT_TOO_LARGE", "Document size in bytes"),
    "max_tokens": ("TOKEN_LIMIT_EXCEEDED", "Token count"),
    "max_depth": ("DEPTH_LIMIT_EXCEEDED", "Query depth"),
    "max_aliases": ("ALIAS_LIMIT_EXCEEDED", "Alias count"),
    "max_directives": ("DIRECTIVE_LIMIT_EXCEEDED", "Directive count"),
    "max_root_fields": ("ROOT_FIELD_LIMIT_EXCEEDED", "Root field count"),
    "max_mutation_fields": ("ROOT_FIELD_LIMIT_EXCEEDED", "Mutation field count"),
    "max_fields": ("FIELD_LIMIT_EXCEEDED", "Field count after fragment expansion"),
    "max_selection_fields": ("FIELD_LIMIT_EXCEEDED", "Field count of one selection set"),
    "max_fragment_expansion": (
        "FRAGMENT_EXPANSION_LIMIT_EXCEEDED",
        "Selections added by fragment expansion",
    ),
    "max_cost": ("COST_LIMIT_EXCEEDED", "Query cost"),
    "max_nodes": ("NODE_LIMIT_EXCEEDED", "Node count"),
    "max_batch": ("BATCH_LIMIT_EXCEEDED", "Batch size"),
}


def limit_error(name: str, observed: int, limit: int) -> GuardError:
    """The GuardError for limit ``name`` exceeded: code, numbers, and a schema-free message."""
    code, what = LIMIT_CODES[name]
    return GuardError(
        code, f"{what} {observed} exceeds the limit of {limit}.", observed=observed, limit=limit
    )


@dataclass(frozen=True)
class Limits:
    """Every operation limit with its mode; ``max_page_size`` clamps slicing arguments.

    limits = Limits.from_mapping({"max_cost": "1000", "max_cost_mode": "measure"})
    """

    max_bytes: Limit = Limit(65_536)
    max_tokens: Limit = Limit(4_000)
    max_depth: Limit = Limit(15)
    max_aliases: Limit = Limit(30)
    max_directives: Limit = Limit(50)
    max_root_fields: Limit = Limit(10)
    max_mutation_fields: Limit = Limit(5)
    max_fields: Limit = Limit(1_000)
    max_selection_fields: Limit = Limit(100)
    max_fragment_expansion: Limit = Limit(2_000)
    max_cost: Limit = Limit(25_000)
    max_nodes: Limit = Limit(100_000)
    max_batch: Limit = Limit(10)
    max_page_size: int = 100

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Limits:
        """Build from strings, e.g. ``{"max_cost": "1000", "max_cost_mode": "measure"}``.

        Keys are limit names (value) and ``<name>_mode`` (enforce, measure, off), plus
        ``max_page_size``. Unknown keys and bad values raise ``ValueError``.
        """
        base = cls()
        changes: dict[str, Any] = {}
        for key, raw in values.items():
            if key == "max_page_size":
                changes[key] = _positive_int(key, raw)
                continue
            name, is_mode = (key[:-5], True) if key.endswith("_mode") else (key, False)
            if name not in LIMIT_CODES:
                raise ValueError(f"unknown limit {key!r}")
            current = changes.get(name, getattr(base, name))
            if is_mode:
                try:
                    mode = Mode(str(raw).strip().lower())
                except ValueError:
                    raise ValueError(f"{key} must be enforce, measure or off") from None
                changes[name] = Limit(current.value, mode)
            else:
                changes[name] = Limit(_positive_int(key, raw), current.mode)
        return dataclasses.replace(base, **changes)

    def as_dict(self) -> dict[str, Any]:
        """Plain values for logs and the CLI: ``{"max_cost": 25000, "max_cost_mode": ...}``."""
        out: dict[str, Any] = {}
        for name in LIMIT_CODES:
            limit: Limit = getattr(self, name)
            out[name] = limit.value
            out[f"{name}_mode"] = limit.mode.value
        out["max_page_size"] = self.max_page_size
        return out


def _positive_int(key: str, raw: Any) -> int:
    try:
        value = int(str(raw).strip().replace("_", ""))
    except ValueError:
        raise ValueError(f"{key} must be an integer, got {raw!r}") from None
    if value < 0:
        raise ValueError(f"{key} must not be negative, got {value}")
    return value


def apply_limit(
    limits: Limits, name: str, observed: int, measured: list[GuardError] | None = None
) -> None:
    """Check ``observed`` against limit ``name``: raise (enforce), record (measure) or ignore.

    In measure mode the would-be refusal is appended to ``measured`` so the caller can log
    and count it.
    """
    limit: Limit = getattr(limits, name)
    if limit.mode is Mode.OFF or observed <= limit.value:
        return
    error = limit_error(name, observed, limit.value)
    if limit.mode is Mode.ENFORCE:
        raise error
    if measured is not None:
        measured.append(error)


def check_batch(size: int, limits: Limits, measured: list[GuardError] | None = None) -> None:
    """Refuse (or record) an HTTP batch of more than ``max_batch`` operations."""
    apply_limit(limits, "max_batch", size, measured)
