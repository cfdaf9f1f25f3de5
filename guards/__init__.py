"""Domain-agnostic protection for any graphql-core schema: gate, limits, cost engine, caches.

The rate limiter lives in ``guards.ratelimit`` (imported on its own, it needs redis).
"""

from __future__ import annotations

from guards.cache import LRUCache
from guards.cost import (
    ActualCost,
    CostEstimate,
    CostItem,
    CostModel,
    CostPlan,
    check_estimate,
    price_document,
)
from guards.errors import GuardError
from guards.gate import (
    DocumentStats,
    check_document,
    check_size,
    count_tokens,
    inspect,
    parse,
)
from guards.limits import LIMIT_CODES, Limit, Limits, Mode, apply_limit, check_batch, limit_error

__all__ = [
    "LIMIT_CODES",
    "ActualCost",
    "CostEstimate",
    "CostItem",
    "CostModel",
    "CostPlan",
    "DocumentStats",
    "GuardError",
    "LRUCache",
    "Limit",
    "Limits",
    "Mode",
    "apply_limit",
    "check_batch",
    "check_document",
    "check_estimate",
    "check_size",
    "count_tokens",
    "inspect",
    "limit_error",
    "parse",
    "price_document",
]
