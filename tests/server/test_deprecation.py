"""Deprecated fields keep working, and the fields an operation uses are found once per document."""

from __future__ import annotations

import httpx
import pytest
from graphql import GraphQLSchema, build_schema, parse

from schema import build_schema as build_served
from server.deprecation import deprecated_fields
from tests.server.conftest import Tokens, gql

TOY = build_schema(
    """
    interface Named { name: String! label: String @deprecated(reason: "Use name.") }
    type Item implements Named {
      name: String!
      label: String @deprecated(reason: "Use name.")
      old: Int @deprecated
      fresh: Int
      child: Item
    }
    type Query { item: Item named: Named legacy: Item @deprecated(reason: "Use item.") }
    """
)


@pytest.fixture(scope="module")
def served() -> GraphQLSchema:
    return build_served()._schema


def test_served_schema_marks_product_in_stock_as_deprecated(served: GraphQLSchema) -> None:
    field = served.type_map["Product"].fields["inStock"]  # type: ignore[attr-defined]
    assert field.deprecation_reason == "Use stock > 0."
    query = parse("{ products(first: 2) { nodes { id stock inStock } } }")
    assert deprecated_fields(served, query, None) == ["Product.inStock"]


def test_fields_inside_fragments_and_inline_fragments_are_found_once() -> None:
    document = parse(
        """
        query Q {
          item { ...Parts child { old ...Parts } }
          named { ... on Item { label } }
        }
        fragment Parts on Item { fresh old child { ...Deeper } }
        fragment Deeper on Item { label }
        fragment Unused on Item { name }
        """
    )
    assert deprecated_fields(TOY, document, "Q") == ["Item.old", "Item.label"]


def test_interface_fields_are_named_by_the_type_they_are_selected_on() -> None:
    assert deprecated_fields(TOY, parse("{ named { label } legacy { name } }")) == [
        "Named.label",
        "Query.legacy",
    ]


def test_only_the_selected_operation_counts() -> None:
    document = parse("query A { item { old } } query B { item { fresh } }")
    assert deprecated_fields(TOY, document, "A") == ["Item.old"]
    assert deprecated_fields(TOY, document, "B") == []
    assert deprecated_fields(TOY, document, "Missing") == []
    assert deprecated_fields(TOY, document, None) == []  # ambiguous without a name


def test_an_operation_without_deprecated_fields_yields_nothing() -> None:
    assert deprecated_fields(TOY, parse("{ item { name fresh child { name } } }")) == []


def test_cyclic_fragments_terminate() -> None:
    # Invalid (NoFragmentCycles), but the function must not loop if called before validation.
    document = parse(
        "{ item { ...A } } fragment A on Item { old child { ...B } } "
        "fragment B on Item { label child { ...A } }"
    )
    assert deprecated_fields(TOY, document) == ["Item.old", "Item.label"]


async def test_deprecated_field_still_resolves_over_http(
    client: httpx.AsyncClient, tokens: Tokens
) -> None:
    response = await gql(
        client,
        "{ products(first: 10) { nodes { stock inStock } } }",
        headers=tokens.headers("CUSTOMER"),
    )
    body = response.json()
    assert response.status_code == 200, body
    assert "errors" not in body, body
    nodes = body["data"]["products"]["nodes"]
    assert nodes
    assert all(node["inStock"] is (node["stock"] > 0) for node in nodes)


async def test_deprecated_field_use_is_counted_per_client_in_metrics(client, tokens) -> None:  # type: ignore[no-untyped-def]
    from tests.server.conftest import gql

    response = await gql(
        client,
        "{ products(first: 1) { nodes { inStock } } }",
        headers={**tokens.headers(), "apollographql-client-name": "legacy-web"},
    )
    assert response.status_code == 200 and "errors" not in response.json()
    metrics = (await client.get("/metrics")).text
    line = next(
        (
            row
            for row in metrics.splitlines()
            if row.startswith("tollgate_deprecated_field_usage_total{")
            and "Product.inStock" in row
            and "legacy-web" in row
        ),
        None,
    )
    assert line is not None and float(line.rsplit(" ", 1)[1]) >= 1
