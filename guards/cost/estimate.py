"""What pricing one request yields: the estimate and its per-field breakdown lines."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from guards.cost.plan import CostPlan


@dataclass(frozen=True)
class CostItem:
    """One line of a breakdown: response path, per-instance weight, instances, total cost."""

    path: str
    weight: int
    multiplier: int
    subtotal: int


class CostEstimate:
    """The requested (static) cost of one request and its node count."""

    __slots__ = ("_plan", "_variables", "nodes", "requested")

    def __init__(
        self, plan: CostPlan, variables: Mapping[str, Any] | None, requested: int, nodes: int
    ) -> None:
        self._plan = plan
        self._variables = variables
        self.requested = requested
        self.nodes = nodes

    def breakdown(self) -> list[CostItem]:
        """Per-field costs in document order (computed on demand, for dry runs)."""
        return self._plan.breakdown(self._variables)

    def actual(self, data: Mapping[str, Any] | None) -> int:
        """Actual cost of the response ``data`` of this request."""
        return self._plan.actual(data, self._variables)

    def longest_list_argument(self) -> int:
        """The most items any list-typed slicing argument of this request carries."""
        return self._plan.longest_list_argument(self._variables)

    def __repr__(self) -> str:
        return f"CostEstimate(requested={self.requested}, nodes={self.nodes})"
