"""Limits: defaults, parsing from configuration strings, modes, and the batch check."""

from __future__ import annotations

import pytest
from graphql import get_introspection_query, parse

from guards.cost import CostModel, check_estimate
from guards.errors import GuardError
from guards.gate import check_document
from guards.limits import Limit, Limits, Mode, apply_limit, check_batch
from tests.guards.conftest import read_operation

OPERATIONS = ["OrdersPage", "ProductCatalog", "ViewerProfile", "RateLimitStatus"]


@pytest.mark.parametrize("name", OPERATIONS)
@pytest.mark.parametrize("first", [1, 20, 50, 100])
def test_defaults_admit_contract_queries(model: CostModel, name: str, first: int) -> None:
    limits = Limits()
    document, stats = check_document(read_operation(name), None, limits)
    estimate = model.compile(document).evaluate({"first": first})
    check_estimate(estimate, limits)
    assert stats.measured == []


def test_defaults_admit_graphiql_introspection(model: CostModel) -> None:
    limits = Limits()
    document, _ = check_document(get_introspection_query(descriptions=True), None, limits)
    check_estimate(model.compile(document).evaluate(None), limits)


def test_defaults_refuse_nested_connections(model: CostModel) -> None:
    text = """{ users(first: 100) { nodes { orders(first: 100) { nodes {
        customer { orders(first: 100) { nodes { id } } } } } } } }"""
    estimate = model.compile(parse(text)).evaluate(None)
    with pytest.raises(GuardError) as caught:
        check_estimate(estimate, Limits())
    assert caught.value.code == "COST_LIMIT_EXCEEDED"


def test_from_mapping_reads_strings() -> None:
    limits = Limits.from_mapping(
        {
            "max_cost": "1000",
            "max_cost_mode": "MEASURE",
            "max_depth_mode": "off",
            "max_nodes": 5,
            "max_page_size": "50",
        }
    )
    assert limits.max_cost == Limit(1000, Mode.MEASURE)
    assert limits.max_depth == Limit(Limits().max_depth.value, Mode.OFF)
    assert limits.max_nodes == Limit(5)
    assert limits.max_page_size == 50
    assert limits.as_dict()["max_cost_mode"] == "measure"


@pytest.mark.parametrize(
    "values",
    [{"max_typo": "1"}, {"max_cost": "lots"}, {"max_cost_mode": "warn"}, {"max_cost": "-1"}],
)
def test_from_mapping_refuses_bad_values(values: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        Limits.from_mapping(values)


def test_apply_limit_modes() -> None:
    measured: list[GuardError] = []
    limits = Limits(max_depth=Limit(3, Mode.MEASURE), max_aliases=Limit(3, Mode.OFF))
    apply_limit(limits, "max_depth", 4, measured)
    apply_limit(limits, "max_aliases", 400, measured)
    apply_limit(limits, "max_directives", 3, measured)  # at the limit is allowed
    assert [(e.code, e.observed, e.limit) for e in measured] == [("DEPTH_LIMIT_EXCEEDED", 4, 3)]


def test_batch_limit() -> None:
    check_batch(10, Limits())
    with pytest.raises(GuardError) as caught:
        check_batch(11, Limits())
    assert caught.value.to_graphql()["extensions"] == {
        "code": "BATCH_LIMIT_EXCEEDED",
        "observed": 11,
        "limit": 10,
    }
