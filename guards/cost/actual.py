"""Actual cost: the response ``data`` walked along the plan, lists capped at their price."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from guards.cost.nodes import CompiledField, Selection
from guards.cost.values import MISSING, ast_value

if TYPE_CHECKING:
    from guards.cost.plan import CostPlan


@dataclass(frozen=True)
class ActualCost:
    """Cost counted from a response: cost, objects, and lists longer than they were priced."""

    cost: int
    nodes: int
    overflow: int


class Merged:
    """All field nodes sharing one response key, as graphql-core merges them."""

    __slots__ = (
        "batchable",
        "child_maps",
        "children",
        "dynamic",
        "extra",
        "extra_lists",
        "fields",
        "first",
        "is_list",
        "leaf_weight",
        "null_weight",
        "single",
        "sized",
        "typename_keys",
        "weights",
    )

    def __init__(self, fields: list[CompiledField]) -> None:
        first = fields[0]
        self.fields = fields
        self.first = first
        self.is_list = first.is_list
        self.sized = first.is_list or first.parent_sized
        self.extra_lists = first.extra_lists
        self.leaf_weight = first.leaf_weight
        self.extra = max(f.surcharge + f.arg_const for f in fields)
        self.dynamic = any(f.arg_dynamic for f in fields)
        self.weights: dict[str, int] = {}
        by_type: dict[str, list[Selection]] = {}
        for f in fields:
            for type_name, (weight, child) in zip(f.type_names, f.children, strict=True):
                by_type.setdefault(type_name, []).append(child)
                self.weights[type_name] = max(self.weights.get(type_name, weight), weight)
        self.children = {name: tuple(sels) for name, sels in by_type.items()}
        # A lookup that found nothing was still work: a null object counts its cheapest type.
        self.null_weight = min(self.weights.values()) if self.weights else 0
        keys: set[str] = set()
        for sels in self.children.values():
            for sel in _flatten(sels):
                keys.update(sel.typename_keys)
        self.typename_keys = tuple(keys)
        self.single = next(iter(self.children)) if len(self.children) == 1 else None
        self.child_maps: dict[str, dict[str, Merged]] = {}
        # Counted a level at a time (ActualCounter.objects): one possible type, a fixed
        # surcharge, no negative weight, so that no instance needs clamping at 0 on its own.
        self.batchable = (
            not self.dynamic
            and self.extra >= 0
            and self.null_weight >= 0
            and all(w >= 0 for w in self.weights.values())
            and (self.single is not None if self.leaf_weight is None else self.leaf_weight >= 0)
        )


def _flatten(sels: Iterable[Selection]) -> list[Selection]:
    out: list[Selection] = []
    seen: set[int] = set()
    stack = list(sels)
    while stack:
        sel = stack.pop()
        if id(sel) in seen:
            continue
        seen.add(id(sel))
        out.append(sel)
        stack.extend(part for _, part in sel.parts)
    return out


def merge(sels: tuple[Selection, ...]) -> dict[str, Merged]:
    """The response keys of a selection that can add to the count.

    A single scalar of weight 0 with no surcharge and no priced argument adds nothing,
    present or not, so the walk skips it: most of a response's fields are such leaves.
    """
    groups: dict[str, list[CompiledField]] = {}
    for sel in _flatten(sels):
        for f in sel.fields:
            groups.setdefault(f.key, []).append(f)
    merged = (Merged(fields) for fields in groups.values())
    return {m.first.key: m for m in merged if not _adds_nothing(m)}


def _adds_nothing(merged: Merged) -> bool:
    return (
        merged.leaf_weight == 0 and not merged.is_list and merged.extra <= 0 and not merged.dynamic
    )


class ActualCounter:
    """One walk of a response along the plan; list lengths capped at their priced size."""

    def __init__(self, plan: CostPlan, variables: Mapping[str, Any] | None) -> None:
        self.plan = plan
        self.variables = variables
        self.overflow = 0
        self.sizes: dict[tuple[int, int | None], int] = {}

    def size(self, f: CompiledField, ps: int | None) -> int:
        if f.size_from_parent and ps is not None:
            return ps
        if not f.slicing:
            return f.fixed_size
        key = (id(f), ps)
        found = self.sizes.get(key)
        if found is None:
            found = self.plan.size(f, self.variables, ps)
            self.sizes[key] = found
        return found

    def priced_size(self, merged: Merged, ps: int | None) -> int:
        """The size a response key's value was priced at (1 for one object)."""
        return self.size(merged.first, ps) if merged.sized else 1

    def objects(
        self, merged_map: dict[str, Merged], objs: list[Mapping[str, Any]], ps: int | None
    ) -> tuple[int, int]:
        """What :meth:`object` counts for each of ``objs`` (one selection, one parent size),
        summed, a level at a time: one pass per field over all the objects of a level instead
        of a call per object (a page of 20 orders has about 250 objects and 8 levels)."""
        cost = nodes = 0
        for key, merged in merged_map.items():
            if not merged.batchable:
                alone = {key: merged}
                for obj in objs:
                    c, n = self.object(alone, obj, ps)
                    cost += c
                    nodes += n
                continue
            values = [v for obj in objs if (v := obj.get(key, MISSING)) is not MISSING]
            if not values:
                continue
            cost += merged.extra * len(values)
            first = merged.first
            size = self.priced_size(merged, ps)
            leaf_weight = merged.leaf_weight
            if leaf_weight is not None:
                for value in values:
                    if value is not None:
                        cost += self.count_leaves(merged, value, size) * leaf_weight
                continue
            child_ps = size if first.parent_sized else None
            found: list[Mapping[str, Any]] = []
            for value in values:
                if value is None:
                    cost += merged.null_weight
                elif merged.is_list and isinstance(value, list):
                    if len(value) > size:
                        self.overflow += 1
                        value = value[:size]
                    for item in value:
                        if type(item) is dict:
                            found.append(item)
                            continue
                        c, n = self.one(merged, item, child_ps)
                        cost += c
                        nodes += n
                elif type(value) is dict:
                    found.append(value)
                else:
                    c, n = self.item(merged, value, child_ps)
                    cost += c
                    nodes += n
            if found:
                single = merged.single
                assert single is not None  # batchable composites have one possible type
                cost += merged.weights[single] * len(found)
                nodes += len(found)
                child_map = merged.child_maps.get(single) or self.child_map(merged, single)
                if child_map:
                    c, n = self.objects(child_map, found, child_ps)
                    cost += c
                    nodes += n
        return cost, nodes

    def object(
        self, merged_map: dict[str, Merged], obj: Mapping[str, Any], ps: int | None
    ) -> tuple[int, int]:
        """One object's count, field by field, each field clamped at 0 on its own: what
        :meth:`objects` does not batch (priced arguments, negative weights, several types)."""
        cost = nodes = 0
        for key, merged in merged_map.items():
            value = obj.get(key, MISSING)
            if value is MISSING:
                continue
            here = self.dynamic_extra(merged) if merged.dynamic else merged.extra
            if value is None:
                if merged.leaf_weight is None:
                    here += merged.null_weight
            elif merged.leaf_weight is not None:
                size = self.priced_size(merged, ps)
                here += self.count_leaves(merged, value, size) * merged.leaf_weight
            else:
                size = self.priced_size(merged, ps)
                child_ps = size if merged.first.parent_sized else None
                if merged.is_list and isinstance(value, list):
                    if len(value) > size:
                        self.overflow += 1
                        value = value[:size]
                    for item in value:
                        c, n = self.one(merged, item, child_ps)
                        here += c
                        nodes += n
                else:
                    c, n = self.item(merged, value, child_ps)
                    here += c
                    nodes += n
            if here > 0:
                cost += here
        return cost, nodes

    def one(self, merged: Merged, item: Any, child_ps: int | None) -> tuple[int, int]:
        """One element of a list: an inner list (priced at the default size) or an item."""
        if isinstance(item, list):
            return self.nested(merged, item, child_ps)
        return self.item(merged, item, child_ps)

    def nested(self, merged: Merged, value: list[Any], child_ps: int | None) -> tuple[int, int]:
        # Inner levels of a nested list were priced at the default list size.
        limit = self.plan.model.default_list_size
        if len(value) > limit:
            self.overflow += 1
            value = value[:limit]
        cost = nodes = 0
        for item in value:
            c, n = self.one(merged, item, child_ps)
            cost += c
            nodes += n
        return cost, nodes

    def dynamic_extra(self, merged: Merged) -> int:
        plan = self.plan
        return max(
            f.surcharge
            + f.arg_const
            + sum(
                plan.model.argument_cost(a.type, w, ast_value(v, self.variables, plan.defaults))
                for a, w, v in f.arg_dynamic
            )
            for f in merged.fields
        )

    def count_leaves(self, merged: Merged, value: Any, size: int) -> int:
        if not merged.is_list or not isinstance(value, list):
            return 1
        count = sum(1 for v in _flat_items(value) if v is not None)
        bound = size * merged.extra_lists
        if count > bound:
            self.overflow += 1
            return bound
        return count

    def item(self, merged: Merged, item: Any, child_ps: int | None) -> tuple[int, int]:
        if type(item) is not dict and not isinstance(item, Mapping):
            return (merged.null_weight if item is None else 0), 0
        single = merged.single
        if single is not None:
            c, n = self.object(self.child_map(merged, single), item, child_ps)
            return merged.weights[single] + c, n + 1
        type_name = None
        for key in merged.typename_keys:
            candidate = item.get(key)
            if isinstance(candidate, str) and candidate in merged.children:
                type_name = candidate
                break
        if type_name is not None:
            c, n = self.object(self.child_map(merged, type_name), item, child_ps)
            return merged.weights[type_name] + c, n + 1
        # Type unknown: the most expensive reading of the object is still within its price.
        best_cost = best_nodes = 0
        for name in merged.children:
            c, n = self.object(self.child_map(merged, name), item, child_ps)
            best_cost = max(best_cost, merged.weights[name] + c)
            best_nodes = max(best_nodes, n + 1)
        return best_cost, best_nodes

    def child_map(self, merged: Merged, type_name: str) -> dict[str, Merged]:
        found = merged.child_maps.get(type_name)
        if found is None:
            found = self.plan.merged(merged.children[type_name])
            merged.child_maps[type_name] = found
        return found


def _flat_items(value: list[Any]) -> Iterable[Any]:
    for item in value:
        if isinstance(item, list):
            yield from _flat_items(item)
        else:
            yield item
