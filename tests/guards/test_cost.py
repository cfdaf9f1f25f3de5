"""The cost engine: exact prices (worked by hand in comments), clamping, actual cost."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from graphql import (
    GraphQLArgument,
    GraphQLField,
    GraphQLInt,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLString,
    build_schema,
    get_introspection_query,
    parse,
)

from guards.cost import CostModel, check_estimate, price_document
from guards.errors import GuardError
from guards.limits import Limit, Limits, Mode
from tests.guards.conftest import read_operation

DIRECTIVES = """
directive @cost(weight: Int!) on ARGUMENT_DEFINITION | ENUM | FIELD_DEFINITION
  | INPUT_FIELD_DEFINITION | OBJECT | SCALAR
directive @listSize(assumedSize: Int, slicingArguments: [String!], sizedFields: [String!],
  requireOneSlicingArgument: Boolean = true) on FIELD_DEFINITION
"""

TOY = build_schema(
    DIRECTIVES
    + """
scalar Expensive @cost(weight: 3)
enum Level @cost(weight: 2) { LOW HIGH }
interface Animal { name: String }
type Dog implements Animal @cost(weight: 5) {
  name: String
  bones(first: Int = 4): [Bone!]! @listSize(slicingArguments: ["first"])
}
type Cat implements Animal { name: String, lives: Int }
type Bone { size: Int }
union Pet = Dog | Cat
input Filter { min: Int @cost(weight: 2), tags: [String!] }
input PageInput { first: Int }
type Query {
  animals(first: Int, last: Int): [Animal!]!
    @listSize(slicingArguments: ["first", "last"], requireOneSlicingArgument: false)
  pets: [Pet!]! @listSize(assumedSize: 3)
  pet: Pet
  blob: Expensive
  level: Level
  heavy: Cat @cost(weight: 7)
  search(filter: Filter, mode: Level, q: String @cost(weight: 4)): [Cat!]! @listSize(assumedSize: 2)
  discount(cheap: Boolean @cost(weight: -50)): Cat
  matrix: [[Cat]]
  page(input: PageInput): [Cat!]! @listSize(slicingArguments: ["input.first"])
  things: [Cat]
  tags: [String] @cost(weight: 2) @listSize(assumedSize: 5)
}
type Mutation { doIt: Cat, ping: Boolean }
"""
)


@pytest.fixture(scope="module")
def toy() -> CostModel:
    return CostModel.from_schema(TOY)


def price(model: CostModel, text: str, variables: dict[str, Any] | None = None) -> int:
    return model.compile(parse(text)).evaluate(variables).requested


# ----------------------------------------------------------------- contract operations


@pytest.mark.parametrize(
    ("name", "variables", "cost", "nodes"),
    [
        # orders: connection 1 + pageInfo 1 + nodes n x (Order 1 + total 1 + customer 1
        #   + items 50 (assumedSize) x (OrderItem 1 + unitPrice 1 + product 1 + price 1))
        # = 2 + 203n; totalCount and scalars are free.
        ("OrdersPage", None, 2 + 203 * 20, 2 + 203 * 20),  # $first defaults to 20: 4,062
        ("OrdersPage", {"first": 50}, 10_152, 10_152),
        ("OrdersPage", {"first": 100}, 20_302, 20_302),
        # products: connection 1 + pageInfo 1 + edges n x (edge 1 + Product 1 + price 1
        #   + reviews(first: 3): connection 1 + nodes 3 x (Review 1 + author 1)) = 2 + 10n,
        # plus the orderBy input object argument: 1.
        ("ProductCatalog", None, 2 + 10 * 20 + 1, 2 + 10 * 20),  # 203
        ("ProductCatalog", {"first": 50}, 503, 502),
        # viewer 1 + orders(first: 5) connection 1 + nodes 5 x (Order 1 + total 1) = 12
        ("ViewerProfile", None, 12, 12),
        # rateLimit: one RateLimit object
        ("RateLimitStatus", None, 1, 1),
        # mutation field +10; OrderPayload 1 + userErrors 10 (default list size) x 1
        #   + order 1 = 12; argument: ConfirmOrderInput object 1 -> 23
        ("ConfirmOrder", {"id": "o1", "expectedVersion": 3}, 23, 12),
        # +10; CreateOrderPayload 1 + userErrors 10 + order (Order 1 + total 1
        #   + items 50 x (OrderItem 1 + product 1)) = 113; argument: CreateOrderInput 1
        #   + 2 OrderItemInput objects = 3 -> 126
        (
            "CreateOrder",
            {
                "input": {
                    "idempotencyKey": "k",
                    "currency": "USD",
                    "items": [
                        {"productId": "p1", "quantity": 1},
                        {"productId": "p2", "quantity": 2},
                    ],
                }
            },
            126,
            113,
        ),
    ],
)
def test_contract_operation_costs(
    model: CostModel, name: str, variables: dict[str, Any] | None, cost: int, nodes: int
) -> None:
    estimate = model.compile(parse(read_operation(name))).evaluate(variables)
    assert (estimate.requested, estimate.nodes) == (cost, nodes)
    check_estimate(estimate, Limits())  # admitted by the default limits


@pytest.mark.parametrize(
    ("first", "size"),
    [
        (99_999_999, 100),  # huge: clamped to max_page_size
        (2_147_483_647, 100),
        (-1_000_000, 1),  # negative: clamped to 1, never a negative cost
        (0, 1),
        (None, 100),  # explicit null: the worst case
        (50.0, 50),  # an integral float coerces to Int
        ("50", 100),  # not an Int: the worst case (coercion will refuse it anyway)
        (True, 100),
    ],
)
def test_slicing_argument_is_clamped(model: CostModel, first: Any, size: int) -> None:
    plan = model.compile(parse(read_operation("OrdersPage")))
    assert plan.evaluate({"first": first}).requested == 2 + 203 * size


def test_literal_slicing_argument_is_clamped(model: CostModel) -> None:
    text = "{ orders(first: 99999999) { nodes { id } } }"
    assert price(model, text) == 1 + 100
    assert price(model, "{ orders(first: -5) { nodes { id } } }") == 1 + 1


def test_schema_default_applies_when_argument_omitted(model: CostModel) -> None:
    # orders(first: Int = 20): connection 1 + 20 nodes
    assert price(model, "{ orders { nodes { id } } }") == 21
    # a variable that is not sent and has no default is an omitted argument
    assert price(model, "query($n: Int) { orders(first: $n) { nodes { id } } }", {}) == 21
    # an operation default wins over the schema default
    assert price(model, "query($n: Int = 7) { orders(first: $n) { nodes { id } } }") == 8


def test_plan_is_compiled_once_and_priced_per_request(model: CostModel) -> None:
    plan = model.compile(parse(read_operation("OrdersPage")))
    assert not plan.static
    assert [plan.evaluate({"first": n}).requested for n in (1, 2, 3)] == [205, 408, 611]
    static = model.compile(parse(read_operation("ViewerProfile")))
    assert static.static


def test_skip_and_include(model: CostModel) -> None:
    text = """query($withItems: Boolean = true, $skipTotal: Boolean!) {
      orders(first: 2) { nodes { id
        total @skip(if: $skipTotal) { amount }
        items @include(if: $withItems) { quantity product { id } }
        customer @include(if: false) { id }
        alsoCustomer: customer @skip(if: false) { id }
      } }
    }"""
    plan = model.compile(parse(text))
    # connection 1 + 2 x (Order 1 + alsoCustomer 1 [+ total 1] [+ items 50 x 2])
    assert plan.evaluate({"skipTotal": True}).requested == 1 + 2 * (2 + 100)
    assert plan.evaluate({"skipTotal": False}).requested == 1 + 2 * (3 + 100)
    assert plan.evaluate({"skipTotal": True, "withItems": False}).requested == 1 + 2 * 2
    # an unknown condition is priced as included
    assert plan.evaluate({}).requested == 1 + 2 * (3 + 100)


def test_abstract_type_costs_its_most_expensive_member(model: CostModel) -> None:
    text = """{ node(id: "x") { id
        ... on Order { items { id } }
        ... on User { orders(first: 3) { nodes { id } } }
    } }"""
    # Order: 1 + 50 items = 51; User: 1 + connection 1 + 3 = 5; Product, Review: 1
    assert price(model, text) == 51


def test_abstract_types_in_a_toy_schema(toy: CostModel) -> None:
    # Dog weighs 5 (@cost on the type), Cat 1: each list item is priced as a Dog
    assert price(toy, "{ animals(first: 2) { name } }") == 2 * 5
    # Dog 5 + bones(first default 4) x Bone 1 = 9
    assert price(toy, "{ animals(first: 2) { ... on Dog { bones { size } } } }") == 2 * 9
    # two slicing arguments: the largest wins
    assert price(toy, "{ animals(first: 2, last: 7) { name } }") == 7 * 5
    # slicing arguments declared but none given, no assumed size: max_page_size
    assert price(toy, "{ animals { name } }") == 100 * 5
    # unions: assumedSize 3, most expensive member Dog
    assert price(toy, "{ pets { ... on Cat { lives } } }") == 3 * 5
    # a fragment on the interface applies to every member
    text = "{ pets { ...A } } fragment A on Animal { ... on Dog { bones(first: 2) { size } } }"
    assert price(toy, text) == 3 * (5 + 2)


def test_cost_on_scalars_enums_fields_arguments_and_input_fields(toy: CostModel) -> None:
    assert price(toy, "{ blob level }") == 3 + 2
    assert price(toy, "{ heavy { name } }") == 7  # the field's @cost replaces Cat's 1
    # list 2 x Cat 1 + filter (input object 1 + min 2 + tags 0) + mode (enum 2) + q (4)
    text = '{ search(filter: {min: 1, tags: ["a", "b"]}, mode: LOW, q: "x") { name } }'
    assert price(toy, text) == 2 + 3 + 2 + 4
    # the same through variables
    text = "query($f: Filter, $m: Level) { search(filter: $f, mode: $m) { name } }"
    assert price(toy, text, {"f": {"min": 5}, "m": "HIGH"}) == 2 + 3 + 2
    assert price(toy, text, {}) == 2
    # a scalar list with a field weight: 5 items x 2
    assert price(toy, "{ tags }") == 10


def test_field_cost_is_never_negative(toy: CostModel) -> None:
    # Cat 1 + argument -50 = -49, clamped to 0 (IBM), and it does not offset siblings
    assert price(toy, "{ discount(cheap: true) { name } }") == 0
    assert price(toy, "{ discount(cheap: true) { name } heavy { name } }") == 7


def test_nested_lists_and_default_list_size(toy: CostModel) -> None:
    assert price(toy, "{ matrix { name } }") == 10 * 10
    assert price(toy, "{ things { name } }") == 10


def test_slicing_argument_in_an_input_object(toy: CostModel) -> None:
    assert price(toy, "{ page(input: {first: 3}) { name } }") == 1 + 3
    text = "query($p: PageInput) { page(input: $p) { name } }"
    assert price(toy, text, {"p": {"first": 200}}) == 1 + 100


def test_mutation_fields_add_ten_each(toy: CostModel, model: CostModel) -> None:
    # doIt: 10 + Cat 1; ping: 10 + Boolean 0; __typename is not a mutation field
    assert price(toy, "mutation { doIt { name } ping __typename }") == 21
    assert price(toy, "mutation { __typename }") == 0
    # aliases and fragments are each charged (T16)
    text = """mutation { a: ping b: ping ...M } fragment M on Mutation { c: ping }"""
    assert price(toy, text) == 30
    estimate = toy.compile(parse("mutation { doIt { name } }")).evaluate(None)
    assert estimate.nodes == 1


def test_sized_fields_apply_through_fragments(model: CostModel) -> None:
    text = """{ orders(first: 4) { ...C } }
      fragment C on OrderConnection { nodes { id } edges { node { id } } pageInfo { endCursor } }"""
    # connection 1 + nodes 4 + edges 4 x (edge 1 + node 1) + pageInfo 1
    assert price(model, text) == 1 + 4 + 8 + 1


def test_fragment_fan_out_is_priced_in_linear_time(model: CostModel) -> None:
    lines = ["query { ...F0 }"]
    lines += [f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(25)]
    lines.append("fragment F25 on Query { viewer { id } }")
    started = time.perf_counter()
    plan = model.compile(parse("\n".join(lines)))
    estimate = plan.evaluate(None)
    elapsed = time.perf_counter() - started
    print(f"\nfan-out of 2**25 compiled and priced in {elapsed * 1000:.1f} ms")
    assert estimate.requested == 2**25  # priced without expanding 2**25 spreads


def test_fragment_cycle_is_refused_by_the_compiler(model: CostModel) -> None:
    text = "{ ...A } fragment A on Query { viewer { id } ...B } fragment B on Query { ...A }"
    with pytest.raises(GuardError) as caught:
        model.compile(parse(text))
    assert caught.value.code == "GRAPHQL_VALIDATION_FAILED"


def test_introspection_is_priced_by_nodes_not_exempt(model: CostModel) -> None:
    estimate = model.compile(parse(get_introspection_query(descriptions=True))).evaluate(None)
    assert estimate.requested == 0  # introspection objects weigh introspection_weight = 0
    assert 10_000 < estimate.nodes <= Limits().max_nodes.value
    bomb = "{ __schema { types { fields { type { fields { type { fields { name } } } } } } } }"
    bomb_estimate = model.compile(parse(bomb)).evaluate(None)
    with pytest.raises(GuardError) as caught:
        check_estimate(bomb_estimate, Limits())
    assert caught.value.code == "NODE_LIMIT_EXCEEDED"
    weighted = CostModel.from_schema(model.schema, introspection_weight=1)
    plan = weighted.compile(parse("{ __schema { queryType { name } } }"))
    assert plan.evaluate(None).requested == 2


def test_breakdown_lines_add_up_to_the_requested_cost(model: CostModel) -> None:
    estimate = model.compile(parse(read_operation("OrdersPage"))).evaluate({"first": 3})
    items = {item.path: item for item in estimate.breakdown()}
    assert items["orders"].subtotal == estimate.requested == 611
    assert items["orders.nodes"].multiplier == 3
    assert items["orders.nodes.items"].multiplier == 150
    assert items["orders.nodes.items.product.price"].subtotal == 150
    assert "orders.totalCount" not in items  # free scalars are left out
    roots = [item for item in estimate.breakdown() if "." not in item.path]
    assert sum(item.subtotal for item in roots) == estimate.requested


def test_check_estimate_enforce_and_measure(model: CostModel) -> None:
    estimate = model.compile(parse(read_operation("OrdersPage"))).evaluate({"first": 50})
    with pytest.raises(GuardError) as caught:
        check_estimate(estimate, Limits(max_cost=Limit(1_000)))
    assert caught.value.to_graphql() == {
        "message": "Query cost 10152 exceeds the limit of 1000.",
        "extensions": {"code": "COST_LIMIT_EXCEEDED", "observed": 10152, "limit": 1000},
    }
    measured: list[GuardError] = []
    check_estimate(
        estimate,
        Limits(max_cost=Limit(1_000, Mode.MEASURE), max_nodes=Limit(10, Mode.MEASURE)),
        measured,
    )
    assert [e.code for e in measured] == ["COST_LIMIT_EXCEEDED", "NODE_LIMIT_EXCEEDED"]


# ----------------------------------------------------------------- actual cost


def order(items: int) -> dict[str, Any]:
    item = {
        "quantity": 1,
        "unitPrice": {"amount": "1", "currency": "USD"},
        "product": {"id": "p", "name": "n", "price": {"amount": "1", "currency": "USD"}},
    }
    return {
        "id": "o",
        "number": "ORD-1",
        "status": "PENDING",
        "createdAt": "2026-01-01T00:00:00Z",
        "total": {"amount": "1", "currency": "USD"},
        "customer": {"id": "u", "name": "n"},
        "items": [item] * items,
    }


def orders_page(*item_counts: int) -> dict[str, Any]:
    return {
        "orders": {
            "totalCount": 1000,
            "pageInfo": {"hasNextPage": True, "endCursor": "c"},
            "nodes": [order(n) for n in item_counts],
        }
    }


def test_actual_cost_counts_what_was_returned(model: CostModel) -> None:
    plan = model.compile(parse(read_operation("OrdersPage")))
    estimate = plan.evaluate({"first": 2})
    # full pages: exactly the requested cost
    assert estimate.actual(orders_page(50, 50)) == estimate.requested == 408
    # 2 + (3 + 4 x 2) + (3 + 4 x 0)
    assert estimate.actual(orders_page(2, 0)) == 2 + 11 + 3
    assert plan.actual_cost(orders_page(2, 0), {"first": 2}).nodes == 16
    assert estimate.actual(None) == 0
    # A lookup that found nothing was still work: a null object counts its type's weight.
    assert estimate.actual({"orders": None}) == 1


def test_actual_cost_never_exceeds_the_price_of_a_list(model: CostModel) -> None:
    plan = model.compile(parse(read_operation("OrdersPage")))
    data = orders_page(60, 1, 1)  # 3 orders and 60 items: more than priced
    actual = plan.actual_cost(data, {"first": 2})
    assert actual.overflow == 2
    assert actual.cost <= plan.evaluate({"first": 2}).requested


def test_actual_cost_of_a_mutation(model: CostModel) -> None:
    plan = model.compile(parse(read_operation("ConfirmOrder")))
    variables = {"id": "o", "expectedVersion": 1}
    data = {"confirmOrder": {"userErrors": [], "order": {"id": "o", "status": "X", "version": 2}}}
    # +10, input object 1, payload 1, order 1
    assert plan.actual(data, variables) == 13
    assert plan.actual(data, variables) <= plan.evaluate(variables).requested


def test_actual_cost_of_abstract_types(model: CostModel) -> None:
    text = """{ a: node(id: "x") { ... on Order { items { id } } ... on User { id } }
               b: node(id: "y") { kind: __typename ... on Order { items { id } } } }"""
    plan = model.compile(parse(text))
    data = {
        "a": {"items": [{"id": "1"}, {"id": "2"}]},  # no __typename: priced at the worst reading
        "b": {"kind": "Order", "items": [{"id": "1"}]},
    }
    assert plan.actual(data) == (1 + 2) + (1 + 1)
    assert plan.actual(data) <= plan.evaluate(None).requested


def test_merged_fields_are_counted_once(model: CostModel) -> None:
    text = "{ viewer { id } viewer { name } ...V } fragment V on Query { viewer { id } }"
    plan = model.compile(parse(text))
    assert plan.evaluate(None).requested == 3  # each field node is priced
    assert plan.actual({"viewer": {"id": "u", "name": "n"}}) == 1  # one object came back


# ----------------------------------------------------------------- schema sources


def test_directives_from_extensions() -> None:
    item = GraphQLObjectType("Item", {"id": GraphQLField(GraphQLString)}, extensions={"cost": 4})
    query = GraphQLObjectType(
        "Query",
        {
            "items": GraphQLField(
                GraphQLNonNull(GraphQLList(item)),
                args={"n": GraphQLArgument(GraphQLInt)},
                extensions={"listSize": {"slicingArguments": ["n"]}},
            ),
            "fixed": GraphQLField(GraphQLList(item), extensions={"listSize": {"assumedSize": 7}}),
        },
    )
    model = CostModel.from_schema(GraphQLSchema(query))
    assert price(model, "{ items(n: 3) { id } }") == 3 * 4
    assert price(model, "{ fixed { id } }") == 7 * 4


def test_directive_objects_of_a_code_first_library() -> None:
    class Cost:
        def __init__(self, weight: int) -> None:
            self.weight = weight

    class ListSize:
        def __init__(self, assumed_size: int) -> None:
            self.assumed_size = assumed_size
            self.slicing_arguments = None
            self.sized_fields = None

    class Definition:
        def __init__(self, *directives: object) -> None:
            self.directives = list(directives)

    item = GraphQLObjectType(
        "Item", {"id": GraphQLField(GraphQLString)}, extensions={"lib": Definition(Cost(2))}
    )
    query = GraphQLObjectType(
        "Query",
        {"items": GraphQLField(GraphQLList(item), extensions={"lib": Definition(ListSize(6))})},
    )
    assert price(CostModel.from_schema(GraphQLSchema(query)), "{ items { id } }") == 12


def test_cost_model_from_sdl() -> None:
    model = CostModel.from_sdl(DIRECTIVES + "type Query { a: Int @cost(weight: 3) }")
    assert price(model, "{ a }") == 3


# ----------------------------------------------------------------- price_document (CLI)


def test_price_document_reports_cost_breakdown_and_errors(model: CostModel) -> None:
    report = price_document(model, read_operation("OrdersPage"), {"first": 50})
    assert (report["cost"], report["nodes"], report["errors"]) == (10_152, 10_152, [])
    assert report["operationName"] == "OrdersPage"
    assert report["breakdown"][0] == {
        "path": "orders",
        "weight": 1,
        "multiplier": 1,
        "subtotal": 10_152,
    }
    limited = price_document(
        model, read_operation("OrdersPage"), {"first": 50}, limits=Limits(max_cost=Limit(100))
    )
    assert limited["cost"] == 10_152
    assert limited["errors"][0]["extensions"]["code"] == "COST_LIMIT_EXCEEDED"
    # A report is data for a terminal or a CI job: it must serialize as JSON.
    assert json.loads(json.dumps(report))["stats"]["depth"] == report["stats"]["depth"] > 0


def test_price_document_reports_parse_validation_and_gate_errors(
    contract_schema: GraphQLSchema,
) -> None:
    parse_error = price_document(contract_schema, "{ viewer {")
    assert parse_error["errors"][0]["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"
    invalid = price_document(contract_schema, "{ viewer { nope } }")
    assert invalid["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert invalid["cost"] is None
    deep = price_document(
        contract_schema, "{ a: viewer { id } }", limits=Limits(max_aliases=Limit(0))
    )
    assert deep["errors"][0]["extensions"]["code"] == "ALIAS_LIMIT_EXCEEDED"
