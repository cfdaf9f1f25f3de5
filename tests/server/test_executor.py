"""The batched executor answers exactly as graphql-core does, and takes what it should.

Two apps share one seeded database (SQLite and PostgreSQL): the default one (batched executor
on) and one with ``fast_executor=False``. Every query of the corpus is sent to both as each
kind of caller; ``data`` must be equal and the errors equal as sets (graphql-core reports them
in completion order, and stops at the first error that nulls a non-null parent: see
``_same_errors``). A second part runs the executor alone over a small SDL schema against
graphql-core's ``execute``, for the null-propagation and error cases the contract's data never
produces (a non-null field resolving to null, a failing list item).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from operator import itemgetter
from typing import Any

import httpx
import pytest
from graphql import build_schema, execute, parse

from resolvers.ids import to_global_id
from schema.executor import Batch, Child, FastExecutor, Leaf
from server.app import create_app
from server.settings import Settings
from tests.server.conftest import Tokens, gql, make_settings, operation

ROLES = ("CUSTOMER", "STAFF", "ADMIN", None)


@pytest.fixture(scope="module")
async def generic_client(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(database_url, fast_executor=False)
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


def _errors(body: dict[str, Any]) -> list[str]:
    return sorted(json.dumps(e, sort_keys=True) for e in body.get("errors") or [])


async def _both(
    client: httpx.AsyncClient,
    generic: httpx.AsyncClient,
    tokens: Tokens,
    query: str,
    variables: dict[str, Any] | None = None,
    role: str | None = "STAFF",
) -> dict[str, Any]:
    headers = tokens.headers(role) if role else {}
    fast = await gql(client, query, variables, headers)
    slow = await gql(generic, query, variables, headers)
    assert fast.status_code == slow.status_code, (query, role)
    got, want = fast.json(), slow.json()
    assert got.get("data") == want.get("data"), (query, role, variables)
    _same_errors(
        _errors(got), _errors(want), (query, role, variables), want.get("data") is not None
    )
    return got  # type: ignore[no-any-return]


def _same_errors(got: list[str], want: list[str], about: Any, exact: bool = False) -> None:
    """Equal, except that graphql-core stops at the first error that nulls a non-null parent.

    It cancels the siblings still running (``gather_with_cancel``), so their errors never
    reach the response; the batched executor resolves a level at once and reports every
    failing field, each at its own path. So: every error graphql-core reports, and no two at
    one path.
    """
    if exact:
        assert got == want, about
    assert set(want) <= set(got), about
    paths = [json.loads(e).get("path") for e in got]
    assert len({json.dumps(p) for p in paths}) == len(paths), about


CORPUS: list[tuple[str, dict[str, Any] | None]] = [
    (operation("OrdersPage"), None),
    (operation("OrdersPage"), {"first": 1}),
    (operation("OrdersPage"), {"first": 50, "status": "CONFIRMED"}),
    (operation("OrdersPage"), {"first": 0}),
    (operation("OrdersPage"), {"first": 101}),
    (operation("OrdersPage"), {"after": "not-a-cursor"}),
    (operation("ProductCatalog"), None),
    (operation("ProductCatalog"), {"first": 5, "search": "a"}),
    (operation("ProductCatalog"), {"search": "x" * 201}),
    (operation("ViewerProfile"), None),
    (
        """query { products(first: 3, orderBy: {field: PRICE, direction: DESC}) {
             totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
             edges { cursor node { id sku name description stock createdAt version inStock
                                   price { amount currency } unitCost { amount currency }
                                   averageRating } } } }""",
        None,
    ),
    (
        """query Internal { orders(first: 3, orderBy: {field: TOTAL, direction: ASC}) {
             nodes { id number status currency note internalNote createdAt updatedAt version
                     total { amount currency }
                     customer { id name role createdAt email }
                     items { id quantity unitPrice { amount } subtotal { amount currency }
                             product { id name unitCost { amount } } } } } }""",
        None,
    ),
    (
        """query Frags($n: Int!) {
             a: orders(first: $n) { ...Page }
             b: orders(first: 1) { nodes { ... on Order { id } ...Num } }
             __typename
           }
           fragment Page on OrderConnection { totalCount nodes { ...Num items { __typename id } } }
           fragment Num on Order { number total { amount } }""",
        {"n": 2},
    ),
    (
        """query Cond($s: Boolean!) { orders(first: 2) {
             nodes { id number @skip(if: $s) status @include(if: $s) total @skip(if: false) { amount } } } }""",
        {"s": True},
    ),
    (
        """query Cond($s: Boolean!) { orders(first: 2) {
             nodes { id number @skip(if: $s) status @include(if: $s) } } }""",
        {"s": False},
    ),
    (
        """{ viewer { id email orders(first: 2, status: PENDING) { totalCount nodes { number } }
                       reviews(first: 2) { totalCount pageInfo { endCursor }
                         edges { cursor node { rating body createdAt
                           product { name averageRating
                             reviews(first: 1) { totalCount nodes { id author { name email } } } } } } } } }""",
        None,
    ),
    (
        """{ users(first: 3, role: CUSTOMER) { totalCount
               nodes { id name role createdAt email orders(first: 1) { totalCount nodes { number } } } } }""",
        None,
    ),
    ("{ rateLimit { cost nodeCount } orders(first: 1) { totalCount } }", None),
    # A failing relation nulls each order; the permission errors after it are still reported.
    (
        "{ orders(first: 2) { nodes { customer { orders(first: 0) { totalCount } } internalNote } } }",
        None,
    ),
    ("{ __typename }", None),
]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("query", "variables"), CORPUS, ids=range(len(CORPUS)))
async def test_batched_executor_answers_as_graphql_core(
    client: httpx.AsyncClient,
    generic_client: httpx.AsyncClient,
    tokens: Tokens,
    query: str,
    variables: dict[str, Any] | None,
    role: str | None,
) -> None:
    await _both(client, generic_client, tokens, query, variables, role)


async def test_cursors_ids_and_other_tenants_answer_alike(
    client: httpx.AsyncClient, generic_client: httpx.AsyncClient, tokens: Tokens
) -> None:
    first = await _both(client, generic_client, tokens, operation("OrdersPage"), {"first": 2})
    cursor = first["data"]["orders"]["pageInfo"]["endCursor"]
    order_id = first["data"]["orders"]["nodes"][0]["id"]
    product_id = first["data"]["orders"]["nodes"][0]["items"][0]["product"]["id"]
    await _both(client, generic_client, tokens, operation("OrdersPage"), {"after": cursor})
    by_id = """query($o: ID!, $p: ID!) { order(id: $o) { id number customer { name } }
                                         product(id: $p) { id name price { amount } } }"""
    for role in ROLES:
        await _both(client, generic_client, tokens, by_id, {"o": order_id, "p": product_id}, role)
    # Another tenant's ids read as missing, exactly as missing ids do.
    globex = tokens.headers("STAFF", "globex")
    foreign = (await gql(client, by_id, {"o": order_id, "p": product_id}, globex)).json()
    assert foreign == {**foreign, "data": {"order": None, "product": None}}
    assert "errors" not in foreign
    # A product id asked as an order reads as missing; a malformed id is BAD_USER_INPUT.
    await _both(client, generic_client, tokens, by_id, {"o": product_id, "p": "bad"}, "ADMIN")
    bogus = to_global_id("Order", uuid.UUID(int=7))
    await _both(client, generic_client, tokens, by_id, {"o": bogus, "p": product_id}, "ADMIN")


async def test_the_executor_takes_reads_and_leaves_the_rest(app: Any) -> None:
    pipeline = app.state.pipeline
    fast = pipeline.fast
    assert fast is not None, "the batched executor is on by default"

    def planned(text: str) -> bool:
        document = parse(text)
        return fast.plan(document, document.definitions[0], {}) is not None

    for name in ("OrdersPage", "ProductCatalog", "ViewerProfile", "RateLimitStatus"):
        assert planned(operation(name)), name
    assert planned(CORPUS[12][0])  # fragments, aliases, __typename
    for text in (
        operation("CreateOrder"),  # mutations
        '{ node(id: "x") { id } }',  # abstract types
        "{ nodes(ids: []) { id } }",
        "{ __schema { queryType { name } } }",  # introspection
        '{ privacyExport(userId: "x") }',  # unbound field
    ):
        assert not planned(text), text


# -- the engine alone, against graphql-core, over a schema built for its corner cases -----------

SDL = """
type Query {
  items: [Item!]!
  maybe: [Item]
  one: Item
  must: Item!
  count: Int!
  late: Int
  big: Int
  huge: Float
  notAList: [Item]
  slow: Item!
}
type Item {
  id: ID!
  name: String
  required: String!
  fails: String
  child: Item
  mustChild: Item!
  kids: [Item!]
  looseKids: [Item]
  tag: Color
  slowChild: Item!
}
enum Color { RED GREEN }
"""


def _item(n: int, **extra: Any) -> dict[str, Any]:
    base = {"id": str(n), "name": f"item {n}", "required": "r", "tag": "RED", "child": None}
    base.update(extra)
    return base


ITEMS = [
    _item(1, kids=[_item(11), _item(12)], looseKids=[_item(13), None], mustChild=_item(14)),
    _item(2, required=None, kids=[_item(21, required=None)], mustChild=_item(22)),
    _item(3, kids=[_item(31)], looseKids=[None, _item(32, required=None)], mustChild=None),
    _item(4, child=_item(41, child=_item(411)), kids=None, mustChild=_item(42), tag="BLUE"),
]


def _fails(item: dict[str, Any]) -> Any:
    if item["id"] in ("2", "41"):
        raise ValueError(f"item {item['id']} fails")
    return "ok"


ROOT: dict[str, Any] = {
    "items": ITEMS,
    "maybe": [ITEMS[0], None, ITEMS[1]],
    "one": ITEMS[3],
    "must": ITEMS[1],
    "count": 4,
    "late": None,
    "big": 2**31,
    "huge": float("inf"),
    "notAList": 7,
    "slow": None,
}


def _generic_schema() -> Any:
    schema = build_schema(SDL)
    item = schema.get_type("Item")
    item.fields["fails"].resolve = lambda obj, info: _fails(obj)  # type: ignore[union-attr]

    async def late(obj: Any, info: Any) -> Any:
        await asyncio.sleep(0)
        raise RuntimeError("late fails")

    async def slow(obj: Any, info: Any) -> Any:
        await asyncio.sleep(0)
        return None

    item.fields["slowChild"].resolve = slow  # type: ignore[union-attr]
    schema.query_type.fields["late"].resolve = late  # type: ignore[union-attr]
    schema.query_type.fields["slow"].resolve = slow  # type: ignore[union-attr]
    return schema


def _bindings() -> dict[str, dict[str, Any]]:
    def get(name: str) -> Any:
        return lambda obj: obj.get(name)

    async def late(ctx: Any, sources: Any, args: Any) -> list[Any]:
        await asyncio.sleep(0)
        raise RuntimeError("late fails")

    async def counts(ctx: Any, sources: Any, args: Any) -> list[Any]:
        return [ROOT["count"] for _ in sources]

    async def slow(ctx: Any, sources: Any, args: Any) -> list[Any]:
        await asyncio.sleep(0)
        return [None for _ in sources]

    return {
        "Query": {
            **{
                name: Child(itemgetter(name))
                for name in ("items", "maybe", "one", "must", "notAList")
            },
            **{name: Leaf(itemgetter(name)) for name in ("big", "huge")},
            "count": Batch(counts),
            "late": Batch(late),
            "slow": Batch(slow),
        },
        "Item": {
            **{name: Leaf(get(name)) for name in ("id", "name", "required", "tag")},
            "fails": Leaf(_fails),
            **{name: Child(get(name)) for name in ("child", "mustChild", "kids", "looseKids")},
            "slowChild": Batch(slow),
        },
    }


ENGINE_CASES = [
    "{ items { id name tag } count }",
    "{ items { id required } }",  # a non-null leaf is null: the item, then the list, then data
    "{ maybe { id required } }",  # nullable items take the null
    "{ maybe { id fails } one { id fails child { id fails child { id } } } }",
    "{ items { id kids { id required } } }",
    "{ maybe { id kids { id required } looseKids { id required } } }",
    "{ maybe { id mustChild { id } } }",
    "{ one { tag } }",  # an enum value the type cannot represent
    "{ late one { id } }",
    "{ must { id required } count }",
    "{ maybe { ...F } } fragment F on Item { id ... on Item { name } n: name __typename }",
    "{ big huge count }",  # Int is 32-bit, Float finite: the scalars' own errors
    "{ notAList { id } one { id } }",  # a list field whose value is no list
    "{ maybe { mustChild { id } fails } }",  # stops at a field that failed synchronously
    "{ maybe { slowChild { id } fails } }",  # runs past one that awaited, reporting the rest
    "{ slow { id } maybe { fails } }",
]


@pytest.mark.parametrize("query", ENGINE_CASES)
async def test_engine_matches_graphql_core_on_nulls_and_errors(query: str) -> None:
    schema = _generic_schema()
    document = parse(query)
    expected = await _maybe_await(execute(schema, document, root_value=ROOT))
    executor = FastExecutor(schema, _bindings())
    plan = executor.plan(document, document.definitions[0], {})  # type: ignore[arg-type]
    assert plan is not None
    data, errors = await executor.run(plan, None, {}, ROOT)
    assert data == expected.data, query
    _same_errors(
        sorted(json.dumps(e.formatted, sort_keys=True) for e in errors),
        sorted(json.dumps(e.formatted, sort_keys=True) for e in expected.errors or []),
        query,
        exact=expected.data is not None,
    )


async def test_a_batch_answering_for_the_wrong_number_of_objects_is_a_located_error() -> None:
    schema = _generic_schema()
    bindings = _bindings()

    async def short(ctx: Any, sources: Any, args: Any) -> list[Any]:
        return []

    bindings["Item"]["name"] = Batch(short)
    document = parse("{ maybe { id name } }")
    executor = FastExecutor(schema, bindings)
    plan = executor.plan(document, document.definitions[0], {})  # type: ignore[arg-type]
    assert plan is not None
    data, errors = await executor.run(plan, None, {}, ROOT)
    assert data == {"maybe": [{"id": "1", "name": None}, None, {"id": "2", "name": None}]}
    assert sorted(e.path for e in errors) == [["maybe", 0, "name"], ["maybe", 2, "name"]]  # type: ignore[type-var]
    assert all("2 objects" in e.message for e in errors)


async def _maybe_await(value: Any) -> Any:
    return await value if asyncio.iscoroutine(value) else value


def test_settings_default_to_the_batched_executor() -> None:
    assert Settings(env="test").fast_executor is True


async def test_a_guarded_batch_refuses_the_denied_sources_and_loads_the_rest() -> None:
    """A permission on a field resolved in batches (a relation, a connection, a root field):
    the denied objects get FORBIDDEN at their own path, the batch loads only the others."""
    schema = _generic_schema()
    bindings = _bindings()
    loaded: list[Any] = []

    async def children(ctx: Any, sources: Any, args: Any) -> list[Any]:
        loaded.extend(s["id"] for s in sources)
        return [{"id": f"{s['id']}-child", "required": "r"} for s in sources]

    bindings["Item"]["child"] = Batch(children, guard=lambda ctx, item: item["id"] != "2")
    document = parse("{ maybe { id child { id } } }")
    executor = FastExecutor(schema, bindings)
    plan = executor.plan(document, document.definitions[0], {})  # type: ignore[arg-type]
    assert plan is not None
    data, errors = await executor.run(plan, None, {}, ROOT)
    assert loaded == ["1"]
    assert data == {
        "maybe": [{"id": "1", "child": {"id": "1-child"}}, None, {"id": "2", "child": None}]
    }
    assert [(e.path, e.extensions["code"]) for e in errors] == [  # type: ignore[index]
        (["maybe", 2, "child"], "FORBIDDEN")
    ]
