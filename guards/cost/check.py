"""The cost checks (list length, ``max_cost``, ``max_nodes``) and offline pricing."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, fields
from typing import Any

from graphql import (
    GraphQLSchema,
    validate,
)

from guards.cost.estimate import CostEstimate
from guards.cost.model import CostModel
from guards.errors import GuardError
from guards.gate import check_document
from guards.limits import Limits, apply_limit

_NOT_STATS = frozenset({"measured", "operation"})


def check_estimate(
    estimate: CostEstimate, limits: Limits, measured: list[GuardError] | None = None
) -> None:
    """Refuse a list slicing argument longer than ``max_page_size`` (BAD_USER_INPUT, always:
    it asks for a page larger than any), then apply ``max_cost`` and ``max_nodes``: raise
    (enforce) or record (measure)."""
    longest = estimate.longest_list_argument()
    if longest > limits.max_page_size:
        raise GuardError(
            "BAD_USER_INPUT",
            f"A list argument has {longest} items, over the limit of {limits.max_page_size}.",
            observed=longest,
            limit=limits.max_page_size,
        )
    apply_limit(limits, "max_cost", estimate.requested, measured)
    apply_limit(limits, "max_nodes", estimate.nodes, measured)


def price_document(
    schema: GraphQLSchema | CostModel,
    text: str,
    variables: Mapping[str, Any] | None = None,
    operation_name: str | None = None,
    limits: Limits | None = None,
) -> dict[str, Any]:
    """Price a document without executing it: cost, nodes, breakdown and limit errors.

    Nothing raises: refusals (enforced limits, parse and validation errors) are listed in
    ``errors`` as GraphQL errors, would-be refusals of measured limits in ``measured``.
    """
    limits = limits or Limits()
    model = (
        schema
        if isinstance(schema, CostModel)
        else CostModel.from_schema(schema, max_page_size=limits.max_page_size)
    )
    result: dict[str, Any] = {
        "operationName": operation_name,
        "operationType": None,
        "cost": None,
        "nodes": None,
        "breakdown": [],
        "stats": None,
        "errors": [],
        "measured": [],
    }
    errors: list[dict[str, Any]] = result["errors"]
    measured: list[GuardError] = []
    try:
        document, stats = check_document(text, operation_name, limits)
    except GuardError as error:
        errors.append(error.to_graphql())
        return result
    measured.extend(stats.measured)
    result["stats"] = {  # the figures only: not the refusals, not the selected AST node
        f.name: getattr(stats, f.name) for f in fields(stats) if f.name not in _NOT_STATS
    }
    result["operationName"] = stats.operation_name
    result["operationType"] = stats.operation_type
    validation = validate(model.schema, document)
    if validation:
        errors.extend(
            {
                "message": e.message,
                "locations": [
                    {"line": loc.line, "column": loc.column} for loc in e.locations or ()
                ],
                "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"},
            }
            for e in validation
        )
        result["measured"] = [m.to_graphql() for m in measured]
        return result
    try:
        plan = model.compile(document, operation_name)
        estimate = plan.evaluate(variables)
    except GuardError as error:
        errors.append(error.to_graphql())
        result["measured"] = [m.to_graphql() for m in measured]
        return result
    result["cost"] = estimate.requested
    result["nodes"] = estimate.nodes
    result["breakdown"] = [asdict(item) for item in estimate.breakdown()]
    try:
        check_estimate(estimate, limits, measured)
    except GuardError as error:
        errors.append(error.to_graphql())
    result["measured"] = [m.to_graphql() for m in measured]
    return result
