"""Soundness: for random operations and random responses within the priced list sizes,
the actual cost never exceeds the requested cost (nor the node count its estimate).

Responses are produced by graphql-core's own executor over the contract schema with random
resolvers, so aliases, fragments, merging and ``@skip``/``@include`` follow the real rules.
"""

from __future__ import annotations

import random
from typing import Any

from graphql import (
    GraphQLEnumType,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLUnionType,
    execute,
    get_named_type,
    parse,
    validate,
)
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from guards.cost import CostModel
from guards.cost.actual import ActualCounter

MAX_DEPTH = 5
FIRST_VALUES = [-3, 0, 1, 2, 3, 5, 150, 2**31 - 1, None]
SIZED = {"edges", "nodes"}


class OperationBuilder:
    """Draws a random valid operation over a schema: connections, fragments, aliases."""

    def __init__(self, draw: Any, schema: GraphQLSchema) -> None:
        self.draw = draw
        self.schema = schema
        self.counter = 0
        self.variable_definitions: list[str] = []
        self.variables: dict[str, Any] = {}
        self.fragments: list[str] = []

    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def operation(self) -> str:
        body = self.selection(self.schema.query_type, 0)  # type: ignore[arg-type]
        header = f"query Q({', '.join(self.variable_definitions)})" if self.variables else "query Q"
        if not self.variable_definitions:
            header = "query Q"
        return "\n".join([f"{header} {{ {body} }}", *self.fragments])

    def selection(self, type_: GraphQLNamedType, depth: int) -> str:
        draw = self.draw
        if isinstance(type_, GraphQLInterfaceType | GraphQLUnionType):
            parts = ["__typename"] if draw(st.booleans()) else []
            if isinstance(type_, GraphQLInterfaceType) and draw(st.booleans()):
                parts.append("id")
            for concrete in self.schema.get_possible_types(type_):
                if draw(st.integers(0, 2)) > 0:
                    parts.append(f"... on {concrete.name} {{ {self.object(concrete, depth)} }}")
            return " ".join(parts) or "__typename"
        assert isinstance(type_, GraphQLObjectType)
        return self.object(type_, depth)

    def object(self, type_: GraphQLObjectType, depth: int) -> str:
        draw = self.draw
        names = sorted(type_.fields)
        chosen = draw(st.lists(st.sampled_from(names), min_size=1, max_size=4))
        parts = [self.field(type_, name, depth) for name in chosen]
        parts = [p for p in parts if p] or ["__typename"]
        how = draw(st.integers(0, 5))
        if how == 0:  # a named fragment, spread once or twice
            fragment = self.fresh("F")
            self.fragments.append(f"fragment {fragment} on {type_.name} {{ {' '.join(parts)} }}")
            return " ".join([f"...{fragment}"] * draw(st.integers(1, 2)))
        if how == 1:  # an inline fragment, perhaps conditional
            condition = self.condition()
            return f"... on {type_.name}{condition} {{ {' '.join(parts)} }}"
        return " ".join(parts)

    def condition(self) -> str:
        draw = self.draw
        kind = draw(st.integers(0, 3))
        if kind == 0:
            return ""
        if kind == 1:
            return f" @skip(if: {str(draw(st.booleans())).lower()})"
        variable = self.fresh("b")
        self.variable_definitions.append(f"${variable}: Boolean!")
        self.variables[variable] = draw(st.booleans())
        return f" @include(if: ${variable})"

    def field(self, parent: GraphQLObjectType, name: str, depth: int) -> str:
        draw = self.draw
        definition = parent.fields[name]
        named = get_named_type(definition.type)
        arguments = self.arguments(definition.args)
        # Fields with arguments get a unique alias, so they never conflict when merged.
        alias = f"{self.fresh('a')}: " if arguments or draw(st.integers(0, 4)) == 0 else ""
        condition = self.condition() if draw(st.integers(0, 3)) == 0 else ""
        head = f"{alias}{name}{arguments}{condition}"
        if isinstance(named, GraphQLObjectType | GraphQLInterfaceType | GraphQLUnionType):
            if depth >= MAX_DEPTH:
                return f"{head} {{ __typename }}"
            return f"{head} {{ {self.selection(named, depth + 1)} }}"
        return head

    def arguments(self, args: dict[str, Any]) -> str:
        draw = self.draw
        parts = []
        for arg_name, arg in args.items():
            required = isinstance(arg.type, GraphQLNonNull)
            if arg_name == "first" and draw(st.booleans()):
                value = draw(st.sampled_from(FIRST_VALUES))
                mode = draw(st.integers(0, 3))
                if mode == 0 and value is not None:
                    parts.append(f"first: {value}")
                else:
                    variable = self.fresh("v")
                    default = " = 3" if mode == 1 else ""
                    self.variable_definitions.append(f"${variable}: Int{default}")
                    if mode != 2:  # mode 2: declared but not sent
                        self.variables[variable] = value
                    parts.append(f"first: ${variable}")
            elif arg_name == "ids":
                count = draw(st.integers(0, 4))
                parts.append("ids: [" + ", ".join(f'"n{i}"' for i in range(count)) + "]")
            elif required:
                parts.append(f'{arg_name}: "x"')
        return f"({', '.join(parts)})" if parts else ""


def clamp(value: Any) -> int:
    if value is None:
        return 100
    return min(max(int(value), 1), 100)


def respond(schema: GraphQLSchema, document: Any, variables: dict[str, Any], seed: int) -> Any:
    """Execute with resolvers that return random data no larger than the priced sizes."""
    rng = random.Random(seed)

    def length(bound: int) -> int:
        if bound <= 4 or rng.random() < 0.3:
            return rng.randint(0, bound) if rng.random() < 0.5 else bound
        return rng.randint(0, 3)

    def leaf(type_: Any) -> Any:
        if isinstance(type_, GraphQLEnumType):
            return next(iter(type_.values.values())).value
        return {"Int": 1, "Float": 1.5, "Boolean": True}.get(type_.name, "x")

    def resolve(source: Any, info: Any, **args: Any) -> Any:
        definition = info.parent_type.fields[info.field_name]
        type_ = definition.type
        if not isinstance(type_, GraphQLNonNull) and rng.random() < 0.1:
            return None
        if isinstance(type_, GraphQLNonNull):
            type_ = type_.of_type
        if isinstance(type_, GraphQLList):
            if info.field_name in SIZED and isinstance(source, dict) and "_size" in source:
                bound = source["_size"]
            elif "ids" in args:
                bound = len(args["ids"])
            elif info.field_name == "items":
                bound = 50
            else:
                bound = 10
            inner = get_named_type(type_)
            return [
                {} if not hasattr(inner, "serialize") else leaf(inner) for _ in range(length(bound))
            ]
        if hasattr(type_, "serialize"):
            return leaf(type_)
        if "first" in args:
            return {"_size": clamp(args["first"])}
        return {}

    def resolve_type(value: Any, info: Any, abstract: Any) -> str:
        return rng.choice(list(schema.get_possible_types(abstract))).name

    result = execute(
        schema,
        document,
        root_value={},
        variable_values=variables,
        field_resolver=resolve,
        type_resolver=resolve_type,
    )
    assert not isinstance(result, dict) and not hasattr(result, "__await__")
    return result


def _disturb(value: Any, rng: random.Random) -> Any:
    """The same response with some lists longer than priced and some objects null."""
    if isinstance(value, list):
        items = [_disturb(v, rng) for v in value]
        if items and rng.random() < 0.3:
            items = items * rng.randint(2, 4)
        if items and rng.random() < 0.2:
            items[rng.randrange(len(items))] = None
        return items
    if isinstance(value, dict):
        return {
            k: None if isinstance(v, dict) and rng.random() < 0.1 else _disturb(v, rng)
            for k, v in value.items()
        }
    return value


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data(), seed=st.integers(0, 2**32))
def test_actual_cost_never_exceeds_requested(
    contract_schema: GraphQLSchema, model: CostModel, data: st.DataObject, seed: int
) -> None:
    builder = OperationBuilder(data.draw, contract_schema)
    text = builder.operation()
    document = parse(text)
    errors = validate(contract_schema, document)
    assume(not errors)
    plan = model.compile(document)
    estimate = plan.evaluate(builder.variables)
    result = respond(contract_schema, document, builder.variables, seed)
    assert not result.errors, (text, result.errors)
    actual = plan.actual_cost(result.data, builder.variables)
    assert actual.overflow == 0, text  # the data really fits the priced sizes
    assert 0 <= actual.cost <= estimate.requested, (text, builder.variables, result.data)
    assert 0 <= actual.nodes <= estimate.nodes, text
    assert estimate.actual(result.data) == actual.cost
    # actual_cost counts a level at a time; an object at a time (the walk it replaced, still
    # used for what cannot be batched) gives the same cost, nodes and overflow, also on
    # responses longer than priced and with nulls.
    disturbed = _disturb(result.data, random.Random(seed))
    one_by_one = ActualCounter(plan, builder.variables)
    cost, nodes = one_by_one.object(plan.merged((plan._root,)), disturbed, None)
    again = plan.actual_cost(disturbed, builder.variables)
    assert (again.cost, again.nodes, again.overflow) == (cost, nodes, one_by_one.overflow), text


def test_builder_produces_valid_documents(contract_schema: GraphQLSchema) -> None:
    """Guard against a generator that only ever yields documents the property discards."""
    valid = 0

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(data=st.data())
    def count(data: st.DataObject) -> None:
        nonlocal valid
        builder = OperationBuilder(data.draw, contract_schema)
        if not validate(contract_schema, parse(builder.operation())):
            valid += 1

    count()
    assert valid >= 30
