"""The contract's operations, pagination, tenancy and field permissions, over HTTP."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import event

from database.engine import reader_of
from tests.server.conftest import Tokens, gql, operation


async def _data(
    client: httpx.AsyncClient, query: str, headers: dict[str, str], **variables: Any
) -> Any:
    response = await gql(client, query, variables or None, headers)
    body = response.json()
    assert response.status_code == 200, body
    assert "errors" not in body, body
    return body["data"]


async def test_orders_page_returns_a_page_with_items_products_and_cursor(
    client: httpx.AsyncClient, tokens: Tokens
) -> None:
    data = await _data(client, operation("OrdersPage"), tokens.headers("STAFF"), first=20)
    orders = data["orders"]
    assert orders["totalCount"] >= 5000  # the seed's, plus any a write test placed
    assert len(orders["nodes"]) == 20
    assert orders["pageInfo"]["hasNextPage"] is True
    first = orders["nodes"][0]
    assert first["number"].startswith("ORD-")
    assert first["total"]["currency"] in ("USD", "EUR", "INR")
    assert 1 <= len(first["items"]) <= 5
    item = first["items"][0]
    assert item["product"]["name"] and item["unitPrice"]["amount"]
    created = [node["createdAt"] for node in orders["nodes"]]
    assert created == sorted(created, reverse=True)
    assert all(c.endswith("Z") for c in created)


async def test_cursors_walk_the_whole_list_without_gaps_or_repeats(
    client: httpx.AsyncClient, tokens: Tokens
) -> None:
    query = "query($after: String) { products(first: 100, after: $after) { totalCount pageInfo { hasNextPage endCursor } nodes { id } } }"
    seen: list[str] = []
    after = None
    for _ in range(20):
        data = await _data(client, query, tokens.headers("STAFF"), after=after)
        seen += [n["id"] for n in data["products"]["nodes"]]
        if not data["products"]["pageInfo"]["hasNextPage"]:
            break
        after = data["products"]["pageInfo"]["endCursor"]
    assert len(seen) == len(set(seen)) == data["products"]["totalCount"] >= 200


async def test_every_contract_query_runs(client: httpx.AsyncClient, tokens: Tokens) -> None:
    for name in ("ProductCatalog", "ViewerProfile", "RateLimitStatus"):
        data = await _data(client, operation(name), tokens.headers("CUSTOMER"))
        assert data
    viewer = (await _data(client, operation("ViewerProfile"), tokens.headers("CUSTOMER")))["viewer"]
    assert viewer["role"] == "CUSTOMER" and viewer["email"]
    catalog = (
        await _data(client, operation("ProductCatalog"), tokens.headers("CUSTOMER"), search="a")
    )["products"]
    names = [edge["node"]["name"] for edge in catalog["edges"]]
    assert names == sorted(names)
    assert all("a" in name.lower() for name in names)


async def test_first_outside_1_to_100_is_bad_user_input(
    client: httpx.AsyncClient, tokens: Tokens
) -> None:
    for first in (0, -1, 101, 99999999):
        response = await gql(
            client,
            "query($f: Int) { orders(first: $f) { nodes { id } } }",
            {"f": first},
            tokens.headers(),
        )
        body = response.json()
        assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", body
        assert body["data"] is None


async def test_malformed_cursor_and_id_are_bad_user_input(
    client: httpx.AsyncClient, tokens: Tokens
) -> None:
    for query in (
        '{ orders(after: "not-a-cursor") { nodes { id } } }',
        '{ orders(after: "W1tdXQ") { nodes { id } } }',
        '{ node(id: "garbage!") { id } }',
        '{ order(id: "\' OR 1=1 --") { id } }',
    ):
        body = (await gql(client, query, headers=tokens.headers())).json()
        assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", body


async def test_search_is_parameterised(client: httpx.AsyncClient, tokens: Tokens) -> None:
    query = "query($s: String) { products(search: $s) { totalCount } }"
    for term in ("%", "_", "' OR 1=1 --", "\\"):
        data = await _data(client, query, tokens.headers(), s=term)
        assert data["products"]["totalCount"] == 0


async def test_customers_see_only_their_own_orders(
    client: httpx.AsyncClient, tokens: Tokens
) -> None:
    customer = tokens.users[("acme", "CUSTOMER")]
    query = "{ orders(first: 100) { totalCount nodes { id customer { id } } } viewer { id } }"
    data = await _data(client, query, tokens.headers("CUSTOMER"))
    assert data["orders"]["totalCount"] < 5000
    assert {n["customer"]["id"] for n in data["orders"]["nodes"]} <= {data["viewer"]["id"]}
    assert customer is not None


async def _an_order(
    client: httpx.AsyncClient, tokens: Tokens, role: str, tenant: str = "acme"
) -> dict[str, Any]:
    data = await _data(
        client,
        "{ orders(first: 1) { nodes { id version customer { id } } } }",
        tokens.headers(role, tenant),
    )
    return data["orders"]["nodes"][0]  # type: ignore[no-any-return]


async def test_other_tenants_ids_read_as_missing_everywhere(
    client: httpx.AsyncClient, tokens: Tokens
) -> None:
    """T19: node, nodes, order and product with another tenant's ids."""
    theirs = await _an_order(client, tokens, "STAFF", "globex")
    product = (
        await _data(
            client, "{ products(first: 1) { nodes { id } } }", tokens.headers("STAFF", "globex")
        )
    )["products"]["nodes"][0]["id"]
    query = "query($o: ID!, $p: ID!) { node(id: $o) { id } order(id: $o) { id } product(id: $p) { id } nodes(ids: [$o, $p]) { id } }"
    data = await _data(client, query, tokens.headers("ADMIN", "acme"), o=theirs["id"], p=product)
    assert data == {"node": None, "order": None, "product": None, "nodes": [None, None]}
    missing = "T3JkZXI6MDE5MDAwMDAwMDAwNzAwMDgwMDAwMDAwMDAwMDAwMDA"  # a well-formed id of nothing
    assert (
        await _data(
            client, "query($o: ID!) { node(id: $o) { id } }", tokens.headers("ADMIN"), o=missing
        )
    ) == {"node": None}


async def test_customers_cannot_reach_other_customers_orders(
    client: httpx.AsyncClient, tokens: Tokens
) -> None:
    """T19: another customer's order via node/order/nested connections is missing or empty."""
    mine = await _an_order(client, tokens, "CUSTOMER")
    other_customer = tokens.users[("acme", "CUSTOMER2")]
    staff_view = await _data(
        client,
        "query($u: ID!) { node(id: $u) { ... on User { orders(first: 1) { nodes { id } } } } }",
        tokens.headers("STAFF"),
        u=_user_gid(other_customer.id),
    )
    other_order = staff_view["node"]["orders"]["nodes"][0]["id"]
    as_customer = await _data(
        client,
        "query($o: ID!, $u: ID!) { node(id: $o) { id } order(id: $o) { id } nodes(ids: [$o]) { id } user: node(id: $u) { ... on User { name orders { totalCount nodes { id } } } } }",
        tokens.headers("CUSTOMER"),
        o=other_order,
        u=_user_gid(other_customer.id),
    )
    assert (
        as_customer["node"] is None
        and as_customer["order"] is None
        and as_customer["nodes"] == [None]
    )
    assert as_customer["user"]["orders"] == {"totalCount": 0, "nodes": []}
    assert (
        await _data(
            client,
            "query($o: ID!) { order(id: $o) { id } }",
            tokens.headers("CUSTOMER"),
            o=mine["id"],
        )
    )["order"]["id"] == mine["id"]


def _user_gid(user_id: Any) -> str:
    from resolvers.ids import to_global_id

    return to_global_id("User", user_id)


async def test_field_permissions_null_the_field_and_keep_the_rest(
    client: httpx.AsyncClient, tokens: Tokens
) -> None:
    query = "{ products(first: 2) { nodes { name unitCost { amount } } } orders(first: 2) { nodes { number internalNote customer { name email } } } }"
    customer = (await gql(client, query, headers=tokens.headers("CUSTOMER"))).json()
    codes = {e["extensions"]["code"] for e in customer["errors"]}
    assert codes == {"FORBIDDEN"}
    assert all(n["unitCost"] is None and n["name"] for n in customer["data"]["products"]["nodes"])
    assert all(
        n["internalNote"] is None and n["number"] for n in customer["data"]["orders"]["nodes"]
    )
    # The customer reads their own email on their own orders.
    assert all(n["customer"]["email"] for n in customer["data"]["orders"]["nodes"])
    admin = (await gql(client, query, headers=tokens.headers("ADMIN"))).json()
    assert "errors" not in admin
    assert all(n["unitCost"] is not None for n in admin["data"]["products"]["nodes"])
    other = await gql(
        client,
        "{ products(first: 20) { nodes { reviews(first: 5) { nodes { author { email } } } } } }",
        headers=tokens.headers("CUSTOMER"),
    )
    assert {e["extensions"]["code"] for e in other.json()["errors"]} == {"FORBIDDEN"}


async def test_users_is_staff_only(client: httpx.AsyncClient, tokens: Tokens) -> None:
    body = (
        await gql(client, "{ users(first: 5) { totalCount } }", headers=tokens.headers("CUSTOMER"))
    ).json()
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    data = await _data(
        client,
        "{ users(first: 5, role: ADMIN) { totalCount nodes { role } } }",
        tokens.headers("STAFF"),
    )
    assert data["users"]["totalCount"] >= 1 and {n["role"] for n in data["users"]["nodes"]} == {
        "ADMIN"
    }


async def test_sql_statements_do_not_grow_with_page_size(
    app: Any, client: httpx.AsyncClient, tokens: Tokens
) -> None:
    """Every statement the app's engine sends for OrdersPage, at first: 1 and first: 50."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        # The persisted-query registry re-reads its version at most twice a second, in its own
        # transaction: bookkeeping of the process, not SQL of the operation.
        if "persisted_documents" not in statement:
            seen.append(statement)

    counts: dict[int, int] = {}
    event.listen(app.state.engine.sync_engine, "before_cursor_execute", record)
    # The read path runs its compiled SQL on the raw driver (database.reader): count it too.
    reader = reader_of(app.state.engine)

    def raw(statement: str) -> None:
        record(None, None, statement)

    if reader is not None:
        reader.listen(raw)
    try:
        for first in (1, 50):
            seen.clear()
            # A text no other test sent (a comment changes the digest): executed, never a
            # response-cache hit, whichever test asked for OrdersPage before.
            text = operation("OrdersPage") + f"\n# statements {uuid.uuid4().hex}"
            await _data(client, text, tokens.headers("STAFF"), first=first)
            counts[first] = sum(
                1 for statement in seen if statement.lstrip().upper().startswith("SELECT")
            )
    finally:
        event.remove(app.state.engine.sync_engine, "before_cursor_execute", record)
        if reader is not None:
            reader.unlisten(raw)
    print(f"SQL SELECT statements per OrdersPage request: {counts}")
    # 5 reads (the raw path sets app.tenant_id with its BEGIN, which is not counted here).
    assert 5 <= counts[1] == counts[50] <= 6, counts
