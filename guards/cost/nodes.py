"""The compiled plan's nodes (one per selection set and field per concrete type) and
the per-request helpers that size them: skip/include and slicing arguments."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from graphql import GraphQLArgument
from graphql.language import ValueNode
from graphql.pyutils import Undefined

from guards.cost.values import MISSING, ast_value


class Selection:
    """A selection set compiled for one concrete object type (and sized-field context)."""

    __slots__ = ("cache", "fields", "parts", "static", "typename_keys")

    def __init__(self) -> None:
        self.fields: list[CompiledField] = []
        self.parts: list[tuple[tuple[tuple[str, bool], ...], Selection]] = []
        self.typename_keys: list[str] = []
        self.static = True
        self.cache: dict[int | None, tuple[int, int]] = {}


class CompiledField:
    """One field node of the document, compiled against one concrete parent type."""

    __slots__ = (
        "arg_const",
        "arg_dynamic",
        "children",
        "conds",
        "extra_lists",
        "fixed_size",
        "is_list",
        "key",
        "leaf_weight",
        "name",
        "parent_sized",
        "size_from_parent",
        "slicing",
        "slicing_fallback",
        "static",
        "surcharge",
        "type_names",
    )

    def __init__(self, key: str, name: str) -> None:
        self.key = key
        self.name = name
        self.conds: tuple[tuple[str, bool], ...] = ()  # (variable, value that skips)
        self.is_list = False
        self.extra_lists = 1  # default_list_size ** (list nesting - 1)
        self.fixed_size = 1  # size when no slicing argument applies
        self.slicing: list[
            tuple[Any, tuple[str, ...], Any]
        ] = []  # (value|ValueNode, path, default)
        self.slicing_fallback = 1
        self.size_from_parent = False  # named in the parent's sizedFields
        self.parent_sized = False  # hands its size to its own sizedFields
        self.leaf_weight: int | None = None  # None: composite
        self.children: list[
            tuple[int, Selection]
        ] = []  # (type weight, selection) per concrete type
        self.type_names: list[str] = []
        self.arg_const = 0
        self.arg_dynamic: list[tuple[GraphQLArgument, int | None, ValueNode]] = []
        self.surcharge = 0
        self.static = True


def skipped(
    conds: tuple[tuple[str, bool], ...],
    variables: Mapping[str, Any] | None,
    defaults: Mapping[str, Any],
) -> bool:
    for name, skips_when in conds:
        if variables is not None and name in variables:
            value = variables[name]
        else:
            value = defaults.get(name)
        if value is skips_when:
            return True
    return False


def _size_of(value: Any, path: tuple[str, ...], max_page: int) -> int | None:
    """One slicing value as a list size; None when absent."""
    for step in path:
        if not isinstance(value, Mapping) or step not in value:
            return None
        value = value[step]
    if value is MISSING:
        return None
    if isinstance(value, bool) or value is None:
        return max_page
    if isinstance(value, int):
        return min(max(value, 1), max_page)
    if isinstance(value, float):
        return min(max(int(value), 1), max_page) if value.is_integer() else max_page
    if isinstance(value, list | tuple):
        return max(len(value), 1)  # a list argument is exactly as long as it is
    return max_page


def slicing_size(
    compiled: CompiledField,
    variables: Mapping[str, Any] | None,
    defaults: Mapping[str, Any] | None,
    max_page: int,
) -> int:
    best: int | None = None
    for value, path, schema_default in compiled.slicing:
        if isinstance(value, ValueNode):
            value = ast_value(value, variables, defaults)
        if value is MISSING:
            # Omitted (or a variable not sent, without default): the schema default applies.
            if schema_default is Undefined:
                continue
            value = schema_default
        size = _size_of(value, path, max_page)
        if size is not None and (best is None or size > best):
            best = size
    return compiled.slicing_fallback if best is None else best
