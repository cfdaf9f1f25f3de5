"""A compiled operation: priced per request in time linear in the document."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from graphql.language import ValueNode

from guards.cost.actual import ActualCost, ActualCounter, Merged, merge
from guards.cost.estimate import CostEstimate, CostItem
from guards.cost.nodes import CompiledField, Selection, skipped, slicing_size
from guards.cost.values import MISSING, ast_value
from guards.errors import GuardError

if TYPE_CHECKING:
    from guards.cost.model import CostModel

_T = TypeVar("_T")
_STATIC_CACHE_MAX = 256  # distinct parent sizes remembered per variable-free selection
_BREAKDOWN_MAX = 5_000


def guarded(function: Callable[..., _T], *args: Any) -> _T:
    """Run a recursive walk; a stack overflow becomes a clean GuardError."""
    try:
        return function(*args)
    except RecursionError:
        pass
    # Raised outside the except block so the deep traceback is released first.
    raise GuardError(
        "DEPTH_LIMIT_EXCEEDED", "Document or variables are nested too deeply to price."
    )


class CostPlan:
    """A compiled operation: evaluate per request, count actual cost from the response."""

    def __init__(
        self,
        model: CostModel,
        root: Selection,
        *,
        operation_type: str,
        operation_name: str | None,
        defaults: dict[str, Any],
        list_arguments: tuple[tuple[Any, tuple[str, ...]], ...] = (),
    ) -> None:
        self.model = model
        self.list_arguments = list_arguments
        self.operation_type = operation_type
        self.operation_name = operation_name
        self._root = root
        self.defaults = defaults
        self._max_page = model.max_page_size
        self._merged: dict[tuple[int, ...], dict[str, Merged]] = {}
        self._static: tuple[int, int] | None = (
            guarded(self._eval_sel, root, None, None, {}) if root.static else None
        )

    @property
    def static(self) -> bool:
        """True when the cost does not depend on variables."""
        return self._static is not None

    def longest_list_argument(self, variables: Mapping[str, Any] | None = None) -> int:
        """The most items any list-typed slicing argument carries (0 when none does)."""
        longest = 0
        for value, path in self.list_arguments:
            if isinstance(value, ValueNode):
                value = ast_value(value, variables, self.defaults)
            for step in path:
                value = value.get(step, MISSING) if isinstance(value, Mapping) else MISSING
            if isinstance(value, list | tuple) and len(value) > longest:
                longest = len(value)
        return longest

    def evaluate(self, variables: Mapping[str, Any] | None = None) -> CostEstimate:
        """Price one request: its variables (as sent; defaults come from the plan)."""
        if self._static is not None:
            cost, nodes = self._static
        else:
            cost, nodes = guarded(self._eval_sel, self._root, variables, None, {})
        return CostEstimate(self, variables, cost, nodes)

    # ---- static cost

    def size(self, f: CompiledField, variables: Mapping[str, Any] | None, ps: int | None) -> int:
        if f.size_from_parent and ps is not None:
            return ps
        if f.slicing:
            return slicing_size(f, variables, self.defaults, self._max_page)
        return f.fixed_size

    def _eval_sel(
        self,
        sel: Selection,
        variables: Mapping[str, Any] | None,
        ps: int | None,
        memo: dict[tuple[int, int | None], tuple[int, int]],
    ) -> tuple[int, int]:
        if sel.static:
            hit = sel.cache.get(ps)
            if hit is not None:
                return hit
        else:
            key = (id(sel), ps)
            hit = memo.get(key)
            if hit is not None:
                return hit
        cost = nodes = 0
        for f in sel.fields:
            if f.conds and skipped(f.conds, variables, self.defaults):
                continue
            c, n = self._eval_field(f, variables, ps, memo)
            cost += c
            nodes += n
        for conds, part in sel.parts:
            if conds and skipped(conds, variables, self.defaults):
                continue
            c, n = self._eval_sel(part, variables, ps, memo)
            cost += c
            nodes += n
        result = (cost, nodes)
        if sel.static:
            if len(sel.cache) < _STATIC_CACHE_MAX:
                sel.cache[ps] = result
        else:
            memo[(id(sel), ps)] = result
        return result

    def _eval_field(
        self,
        f: CompiledField,
        variables: Mapping[str, Any] | None,
        ps: int | None,
        memo: dict[tuple[int, int | None], tuple[int, int]],
    ) -> tuple[int, int]:
        size = self.size(f, variables, ps) if (f.is_list or f.parent_sized) else 1
        mult = size * f.extra_lists if f.is_list else 1
        leaf_weight = f.leaf_weight
        if leaf_weight is not None:
            cost = mult * leaf_weight
            nodes = 0
        else:
            child_ps = size if f.parent_sized else None
            best_cost = best_nodes = 0
            for weight, child in f.children:
                c, n = self._eval_sel(child, variables, child_ps, memo)
                if weight + c > best_cost:
                    best_cost = weight + c
                if n + 1 > best_nodes:
                    best_nodes = n + 1
            cost = mult * best_cost
            nodes = mult * best_nodes
        cost += f.surcharge + f.arg_const
        for arg_def, arg_weight, value_node in f.arg_dynamic:
            cost += self.model.argument_cost(
                arg_def.type, arg_weight, ast_value(value_node, variables, self.defaults)
            )
        return (cost if cost > 0 else 0), nodes

    # ---- breakdown

    def breakdown(self, variables: Mapping[str, Any] | None = None) -> list[CostItem]:
        """Per-field cost items, fragments expanded, at most 5,000 lines."""
        items: list[CostItem] = []
        self._breakdown_sel(self._root, variables, None, "", 1, items)
        return items

    def _breakdown_sel(
        self,
        sel: Selection,
        variables: Mapping[str, Any] | None,
        ps: int | None,
        prefix: str,
        instances: int,
        items: list[CostItem],
    ) -> None:
        for f in sel.fields:
            if len(items) >= _BREAKDOWN_MAX:
                return
            if f.conds and skipped(f.conds, variables, self.defaults):
                continue
            cost, _ = self._eval_field(f, variables, ps, {})
            size = self.size(f, variables, ps) if (f.is_list or f.parent_sized) else 1
            mult = size * f.extra_lists if f.is_list else 1
            path = f"{prefix}.{f.key}" if prefix else f.key
            if f.leaf_weight is not None:
                items.append(CostItem(path, f.leaf_weight, instances * mult, instances * cost))
                continue
            # The most expensive concrete type is the one the estimate priced.
            best: tuple[int, Selection] | None = None
            best_cost = -1
            child_ps = size if f.parent_sized else None
            for weight, child in f.children:
                c, _ = self._eval_sel(child, variables, child_ps, {})
                if weight + c > best_cost:
                    best_cost, best = weight + c, (weight, child)
            weight = best[0] if best else 0
            items.append(CostItem(path, weight, instances * mult, instances * cost))
            if best is not None:
                self._breakdown_sel(best[1], variables, child_ps, path, instances * mult, items)
        for conds, part in sel.parts:
            if conds and skipped(conds, variables, self.defaults):
                continue
            self._breakdown_sel(part, variables, ps, prefix, instances, items)

    # ---- actual cost

    def actual(
        self, data: Mapping[str, Any] | None, variables: Mapping[str, Any] | None = None
    ) -> int:
        """Actual cost of a response's ``data`` (0 when nothing was returned)."""
        return self.actual_cost(data, variables).cost

    def actual_cost(
        self, data: Mapping[str, Any] | None, variables: Mapping[str, Any] | None = None
    ) -> ActualCost:
        """Actual cost, objects returned, and how many lists were longer than priced."""
        if not isinstance(data, Mapping):
            return ActualCost(0, 0, 0)
        counter = ActualCounter(self, variables)
        cost, nodes = counter.objects(self.merged((self._root,)), [data], None)
        return ActualCost(cost, nodes, counter.overflow)

    def merged(self, sels: tuple[Selection, ...]) -> dict[str, Merged]:
        key = tuple(id(s) for s in sels)
        found = self._merged.get(key)
        if found is None:
            found = merge(sels)
            self._merged[key] = found
        return found
