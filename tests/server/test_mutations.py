"""Writes: idempotent orders, atomic stock, state machine, versions, reviews, products."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx

from tests.server.conftest import Tokens, gql, operation

PRODUCT_QUERY = "query($q: String) { products(first: 1, search: $q) { nodes { id stock version price { currency } } } }"
CREATE_PRODUCT = """mutation($input: CreateProductInput!) { createProduct(input: $input) {
  product { id sku stock version price { amount currency } } userErrors { field message code } } }"""


async def _post(
    client: httpx.AsyncClient, query: str, variables: dict[str, Any], headers: dict[str, str]
) -> dict[str, Any]:
    response = await gql(client, query, variables, headers)
    body: dict[str, Any] = response.json()
    assert response.status_code == 200, body
    return body


async def _new_product(
    client: httpx.AsyncClient, tokens: Tokens, stock: int, tenant: str = "acme"
) -> dict[str, Any]:
    sku = f"T-{uuid.uuid4().hex[:10]}"
    body = await _post(
        client,
        CREATE_PRODUCT,
        {
            "input": {
                "sku": sku,
                "name": f"Test {sku}",
                "price": "12.50",
                "currency": "USD",
                "unitCost": "3.10",
                "stock": stock,
            }
        },
        tokens.headers("ADMIN", tenant),
    )
    payload = body["data"]["createProduct"]
    assert payload["userErrors"] == [], payload
    return payload["product"]  # type: ignore[no-any-return]


def _order_input(
    product_id: str, quantity: int, key: str | None = None, note: str | None = None
) -> dict[str, Any]:
    return {
        "input": {
            "idempotencyKey": key or uuid.uuid4().hex,
            "currency": "USD",
            "items": [{"productId": product_id, "quantity": quantity}],
            "note": note,
        }
    }


async def test_create_order_decrements_stock_and_replays_idempotently(
    client: httpx.AsyncClient, tokens: Tokens
) -> None:
    product = await _new_product(client, tokens, stock=10)
    headers = tokens.headers("CUSTOMER")
    variables = _order_input(product["id"], 3, key="replay-key-" + uuid.uuid4().hex)
    first = (await _post(client, operation("CreateOrder"), variables, headers))["data"][
        "createOrder"
    ]
    assert first["userErrors"] == [] and first["replayed"] is False
    order = first["order"]
    assert order["status"] == "PENDING" and order["version"] == 1
    assert order["total"] == {"amount": "37.50", "currency": "USD"}
    assert order["items"][0]["product"]["stock"] == 7
    again = (await _post(client, operation("CreateOrder"), variables, headers))["data"][
        "createOrder"
    ]
    assert again["replayed"] is True and again["order"]["id"] == order["id"]
    assert again["order"]["items"][0]["product"]["stock"] == 7
    changed = _order_input(product["id"], 4, key=variables["input"]["idempotencyKey"])
    reused = (await _post(client, operation("CreateOrder"), changed, headers))["data"][
        "createOrder"
    ]
    assert reused["order"] is None
    assert reused["userErrors"][0]["code"] == "IDEMPOTENCY_KEY_REUSED"
    # The same key from another caller is another caller's key.
    other = (await _post(client, operation("CreateOrder"), variables, tokens.headers("CUSTOMER2")))[
        "data"
    ]["createOrder"]
    assert other["replayed"] is False and other["order"]["id"] != order["id"]


async def test_insufficient_stock_changes_nothing(
    client: httpx.AsyncClient, tokens: Tokens
) -> None:
    product = await _new_product(client, tokens, stock=2)
    body = await _post(
        client, operation("CreateOrder"), _order_input(product["id"], 3), tokens.headers("CUSTOMER")
    )
    payload = body["data"]["createOrder"]
    assert payload["order"] is None
    assert payload["userErrors"] == [
        {
            "field": ["items", "0", "productId"],
            "message": "Only 2 left in stock.",
            "code": "INSUFFICIENT_STOCK",
        }
    ]
    stock = await _post(
        client,
        "query($id: ID!) { product(id: $id) { stock } }",
        {"id": product["id"]},
        tokens.headers(),
    )
    assert stock["data"]["product"]["stock"] == 2


async def test_bad_order_input_is_a_user_error(client: httpx.AsyncClient, tokens: Tokens) -> None:
    product = await _new_product(client, tokens, stock=5)
    cases = [
        (_order_input(product["id"], 0), ["items", "0", "quantity"]),
        (_order_input("bm90LWFuLWlk", 1), ["items", "0", "productId"]),
        (
            {"input": {"idempotencyKey": uuid.uuid4().hex, "currency": "USD", "items": []}},
            ["items"],
        ),
        (
            {
                "input": {
                    "idempotencyKey": uuid.uuid4().hex,
                    "currency": "EUR",
                    "items": [{"productId": product["id"], "quantity": 1}],
                }
            },
            ["items", "0", "productId"],
        ),
    ]
    for variables, field in cases:
        payload = (
            await _post(client, operation("CreateOrder"), variables, tokens.headers("CUSTOMER"))
        )["data"]["createOrder"]
        assert payload["order"] is None
        assert payload["userErrors"][0]["field"] == field, payload
        assert payload["userErrors"][0]["code"] == "INVALID_INPUT", payload


async def test_confirm_and_cancel_follow_the_state_machine_and_versions(
    client: httpx.AsyncClient, tokens: Tokens
) -> None:
    product = await _new_product(client, tokens, stock=10)
    created = (
        await _post(
            client,
            operation("CreateOrder"),
            _order_input(product["id"], 4),
            tokens.headers("CUSTOMER"),
        )
    )["data"]["createOrder"]["order"]
    # Customers may not confirm.
    denied = await _post(
        client,
        operation("ConfirmOrder"),
        {"id": created["id"], "expectedVersion": 1},
        tokens.headers("CUSTOMER"),
    )
    assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    stale = (
        await _post(
            client,
            operation("ConfirmOrder"),
            {"id": created["id"], "expectedVersion": 7},
            tokens.headers("STAFF"),
        )
    )["data"]["confirmOrder"]
    assert stale["order"] is None and stale["userErrors"][0]["code"] == "VERSION_CONFLICT"
    confirmed = (
        await _post(
            client,
            operation("ConfirmOrder"),
            {"id": created["id"], "expectedVersion": 1},
            tokens.headers("STAFF"),
        )
    )["data"]["confirmOrder"]
    assert confirmed["order"] == {"id": created["id"], "status": "CONFIRMED", "version": 2}
    twice = (
        await _post(
            client,
            operation("ConfirmOrder"),
            {"id": created["id"], "expectedVersion": 2},
            tokens.headers("STAFF"),
        )
    )["data"]["confirmOrder"]
    assert twice["userErrors"][0]["code"] == "INVALID_STATE"
    cancel = 'mutation($id: ID!, $v: Int!) { cancelOrder(input: {id: $id, expectedVersion: $v, reason: "test"}) { order { status version items { product { stock } } } userErrors { code } } }'
    by_customer = (
        await _post(client, cancel, {"id": created["id"], "v": 2}, tokens.headers("CUSTOMER"))
    )["data"]["cancelOrder"]
    assert (
        by_customer["userErrors"][0]["code"] == "INVALID_STATE"
    )  # confirmed: only staff may cancel
    by_staff = (
        await _post(client, cancel, {"id": created["id"], "v": 2}, tokens.headers("STAFF"))
    )["data"]["cancelOrder"]
    assert by_staff["order"]["status"] == "CANCELLED" and by_staff["order"]["version"] == 3
    assert by_staff["order"]["items"][0]["product"]["stock"] == 10
    other = (
        await _post(client, cancel, {"id": created["id"], "v": 3}, tokens.headers("CUSTOMER2"))
    )["data"]["cancelOrder"]
    assert other["userErrors"][0]["code"] == "NOT_FOUND"


async def test_reviews_need_an_order_and_are_unique(
    client: httpx.AsyncClient, tokens: Tokens
) -> None:
    product = await _new_product(client, tokens, stock=10)
    add = 'mutation($p: ID!, $r: Int!) { addReview(input: {productId: $p, rating: $r, body: "ok"}) { review { rating author { id } product { id } } userErrors { code field } } }'
    before = await _post(client, add, {"p": product["id"], "r": 5}, tokens.headers("CUSTOMER"))
    assert before["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    await _post(
        client, operation("CreateOrder"), _order_input(product["id"], 1), tokens.headers("CUSTOMER")
    )
    bad = (await _post(client, add, {"p": product["id"], "r": 9}, tokens.headers("CUSTOMER")))[
        "data"
    ]["addReview"]
    assert bad["userErrors"] == [{"code": "INVALID_INPUT", "field": ["rating"]}]
    ok = (await _post(client, add, {"p": product["id"], "r": 5}, tokens.headers("CUSTOMER")))[
        "data"
    ]["addReview"]
    assert ok["review"]["rating"] == 5 and ok["review"]["product"]["id"] == product["id"]
    dup = (await _post(client, add, {"p": product["id"], "r": 4}, tokens.headers("CUSTOMER")))[
        "data"
    ]["addReview"]
    assert dup["userErrors"][0]["code"] == "DUPLICATE"


async def test_products_are_admin_only_versioned_and_unique_by_sku(
    client: httpx.AsyncClient, tokens: Tokens
) -> None:
    denied = await _post(
        client,
        CREATE_PRODUCT,
        {"input": {"sku": "X-1", "name": "x", "price": "1.00", "currency": "USD", "stock": 1}},
        tokens.headers("STAFF"),
    )
    assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN" and denied["data"] is None
    product = await _new_product(client, tokens, stock=1)
    dup = await _post(
        client,
        CREATE_PRODUCT,
        {
            "input": {
                "sku": product["sku"],
                "name": "x",
                "price": "1.00",
                "currency": "USD",
                "stock": 1,
            }
        },
        tokens.headers("ADMIN"),
    )
    assert dup["data"]["createProduct"]["userErrors"][0]["code"] == "DUPLICATE"
    update = "mutation($input: UpdateProductInput!) { updateProduct(input: $input) { product { stock version price { amount } } userErrors { code field } } }"
    changed = (
        await _post(
            client,
            update,
            {"input": {"id": product["id"], "expectedVersion": 1, "stock": 9, "price": "2.25"}},
            tokens.headers("ADMIN"),
        )
    )["data"]["updateProduct"]
    assert changed["product"] == {"stock": 9, "version": 2, "price": {"amount": "2.25"}}
    stale = (
        await _post(
            client,
            update,
            {"input": {"id": product["id"], "expectedVersion": 1, "stock": 1}},
            tokens.headers("ADMIN"),
        )
    )["data"]["updateProduct"]
    assert stale["userErrors"][0]["code"] == "VERSION_CONFLICT"
    negative = (
        await _post(
            client,
            update,
            {"input": {"id": product["id"], "expectedVersion": 2, "stock": -1}},
            tokens.headers("ADMIN"),
        )
    )["data"]["updateProduct"]
    assert negative["userErrors"] == [{"code": "INVALID_INPUT", "field": ["stock"]}]
    bad_price = (
        await _post(
            client,
            update,
            {"input": {"id": product["id"], "expectedVersion": 2, "price": "1.234"}},
            tokens.headers("ADMIN"),
        )
    )["data"]["updateProduct"]
    assert bad_price["userErrors"] == [{"code": "INVALID_INPUT", "field": ["price"]}]


async def test_concurrent_orders_never_oversell(client: httpx.AsyncClient, tokens: Tokens) -> None:
    product = await _new_product(client, tokens, stock=5)
    headers = [tokens.headers("CUSTOMER"), tokens.headers("CUSTOMER2"), tokens.headers("STAFF")]
    results = await asyncio.gather(
        *[
            _post(client, operation("CreateOrder"), _order_input(product["id"], 1), headers[i % 3])
            for i in range(12)
        ]
    )
    payloads = [r["data"]["createOrder"] for r in results]
    placed = [p for p in payloads if p["order"] is not None]
    refused = [p for p in payloads if p["order"] is None]
    assert len(placed) == 5
    assert all(p["userErrors"][0]["code"] == "INSUFFICIENT_STOCK" for p in refused)
    stock = await _post(
        client,
        "query($id: ID!) { product(id: $id) { stock } }",
        {"id": product["id"]},
        tokens.headers(),
    )
    assert stock["data"]["product"]["stock"] == 0


async def test_concurrent_replays_of_one_key_create_one_order(
    client: httpx.AsyncClient, tokens: Tokens
) -> None:
    product = await _new_product(client, tokens, stock=50)
    variables = _order_input(product["id"], 1, key="race-" + uuid.uuid4().hex)
    results = await asyncio.gather(
        *[
            _post(client, operation("CreateOrder"), variables, tokens.headers("CUSTOMER"))
            for _ in range(8)
        ]
    )
    ids = {r["data"]["createOrder"]["order"]["id"] for r in results}
    assert len(ids) == 1
    assert sum(1 for r in results if not r["data"]["createOrder"]["replayed"]) == 1
    stock = await _post(
        client,
        "query($id: ID!) { product(id: $id) { stock } }",
        {"id": product["id"]},
        tokens.headers(),
    )
    assert stock["data"]["product"]["stock"] == 49
