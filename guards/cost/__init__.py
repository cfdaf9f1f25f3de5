"""The cost engine (request path steps 7 and 10): IBM cost directives, compiled once, priced often.

    model = CostModel.from_schema(schema)             # once per schema
    plan = model.compile(document, "OrdersPage")      # once per document (cache it)
    estimate = plan.evaluate({"first": 50})           # per request, microseconds
    estimate.requested, estimate.nodes                # 10152, 10152
    check_estimate(estimate, limits)                  # COST_LIMIT_EXCEEDED / NODE_LIMIT_EXCEEDED
    ...execute...
    actual = estimate.actual(result.data)             # <= estimate.requested

The model (IBM GraphQL Cost Directives with integer weights, as Apollo, Hive and Grafbase):

* A composite field costs ``instances x (type weight + cost of its selection)`` plus its
  arguments' costs; ``@cost`` on the field replaces the type weight. Objects weigh 1 (or their
  ``@cost``), scalars and enums 0 (or their ``@cost``), introspection types
  ``introspection_weight`` (0 by default: they are served from memory, but their nodes count).
* ``instances`` is 1 for a non-list field. For a list it is the largest slicing argument given
  (variables resolved, then the operation's variable default, then the schema default),
  an Int clamped to ``1..max_page_size`` (negative, zero and huge values clamp; null or a
  non-integer prices as ``max_page_size``) and a list argument by its length; else
  ``assumedSize``; else, for a field named in its parent's ``sizedFields``, the parent's size;
  else ``default_list_size`` (introspection lists: the exact maxima of this schema).
  Slicing arguments declared but absent, without schema default or ``assumedSize``, price
  at ``max_page_size``; ``requireOneSlicingArgument`` is not turned into an error.
* Interfaces and unions cost their most expensive possible type, selection included
  (the selection is compiled per concrete type, so type conditions are exact).
* Argument cost (IBM): ``@cost`` of the argument plus, by type, input objects 1 (each item of
  a list of them too) plus their input fields, scalars and enums their ``@cost`` or 0.
* Each root field of a mutation adds ``mutation_weight`` (10). A field's cost is never
  negative (IBM: clamped to 0). ``@skip``/``@include`` are honoured when their value is known
  (literal, variable, or variable default); unknown conditions are priced as included.
* ``nodes`` is the largest number of objects the operation may return (GitHub's node count):
  the same walk with every object weighing 1 and no argument or mutation surcharge.

Evaluation memoises each fragment's compiled selection per request and caches selections
that depend on no variable across requests, so a spread repeated 2^25 times through a
fragment chain costs one visit per fragment. Actual cost walks the result ``data`` along
the same plan: objects really returned, each list counted by its real length but never
more than the size it was priced at (so ``actual <= requested`` holds for every response;
lists longer than priced are reported as ``overflow`` for calibration).
"""

from __future__ import annotations

from guards.cost.actual import ActualCost
from guards.cost.check import check_estimate, price_document
from guards.cost.estimate import CostEstimate, CostItem
from guards.cost.model import CostModel
from guards.cost.plan import CostPlan

__all__ = [
    "ActualCost",
    "CostEstimate",
    "CostItem",
    "CostModel",
    "CostPlan",
    "check_estimate",
    "price_document",
]
