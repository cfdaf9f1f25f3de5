"""The cost model of one schema: weights and list sizes read once from its directives."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from graphql import (
    DocumentNode,
    FragmentDefinitionNode,
    GraphQLArgument,
    GraphQLEnumType,
    GraphQLField,
    GraphQLInputField,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLUnionType,
    OperationDefinitionNode,
    build_schema,
    get_operation_ast,
)
from graphql.type import introspection_types

from guards.cost.compiler import Compiler
from guards.cost.directives import ListSize, read_cost, read_list_size
from guards.cost.plan import CostPlan, guarded
from guards.cost.values import MISSING, literal
from guards.errors import GuardError


class CostModel:
    """Weights and list sizes of one schema, read once from its IBM cost directives."""

    def __init__(
        self,
        schema: GraphQLSchema,
        *,
        default_list_size: int = 10,
        max_page_size: int = 100,
        mutation_weight: int = 10,
        introspection_weight: int = 0,
    ) -> None:
        self.schema = schema
        self.default_list_size = max(1, default_list_size)
        self.max_page_size = max(1, max_page_size)
        self.mutation_weight = mutation_weight
        self.introspection_weight = introspection_weight
        self._type_weight: dict[str, int] = {}
        self._field_cost: dict[tuple[str, str], int | None] = {}
        self._list_size: dict[tuple[str, str], ListSize | None] = {}
        self._arg_cost: dict[int, int | None] = {}
        self._costly: dict[str, bool] = {}
        self.introspection_sizes = self._introspection_list_sizes()
        self._possible: dict[str, list[GraphQLObjectType]] = {}

    @classmethod
    def from_schema(cls, schema: GraphQLSchema, **options: Any) -> CostModel:
        """Build the model for ``schema`` (directives read from AST nodes or extensions)."""
        return cls(schema, **options)

    @classmethod
    def from_sdl(cls, sdl: str, **options: Any) -> CostModel:
        """Build the model from SDL text, e.g. a code-first schema's printed SDL."""
        return cls.from_schema(build_schema(sdl), **options)

    # ---- weights

    def type_weight(self, named: GraphQLNamedType) -> int:
        """Per-instance weight of a named output or input type."""
        name = named.name
        weight = self._type_weight.get(name)
        if weight is None:
            declared = read_cost(named)
            if declared is not None:
                weight = declared
            elif name in introspection_types:
                weight = self.introspection_weight if isinstance(named, GraphQLObjectType) else 0
            elif isinstance(named, GraphQLScalarType | GraphQLEnumType):
                weight = 0
            elif isinstance(named, GraphQLInterfaceType | GraphQLUnionType):
                weight = max((self.type_weight(t) for t in self.possible_types(named)), default=1)
            else:
                weight = 1
            self._type_weight[name] = weight
        return weight

    def possible_types(self, named: GraphQLNamedType) -> list[GraphQLObjectType]:
        if isinstance(named, GraphQLObjectType):
            return [named]
        found = self._possible.get(named.name)
        if found is None:
            found = list(self.schema.get_possible_types(named))  # type: ignore[arg-type]
            self._possible[named.name] = found
        return found

    def field_weight(self, parent: str, name: str, definition: GraphQLField) -> int | None:
        key = (parent, name)
        if key not in self._field_cost:
            self._field_cost[key] = read_cost(definition)
        return self._field_cost[key]

    def field_list_size(self, parent: str, name: str, definition: GraphQLField) -> ListSize | None:
        key = (parent, name)
        if key not in self._list_size:
            self._list_size[key] = read_list_size(definition)
        return self._list_size[key]

    def argument_weight(self, element: GraphQLArgument | GraphQLInputField) -> int | None:
        key = id(element)
        if key not in self._arg_cost:
            self._arg_cost[key] = read_cost(element)
        return self._arg_cost[key]

    def is_costly(self, type_: Any) -> bool:
        """Whether any value of this input type can cost more than 0."""
        while isinstance(type_, GraphQLNonNull | GraphQLList):
            type_ = type_.of_type
        name = type_.name
        known = self._costly.get(name)
        if known is not None:
            return known
        if isinstance(type_, GraphQLInputObjectType):
            self._costly[name] = True  # input objects weigh 1 (IBM)
            return True
        self._costly[name] = self.type_weight(type_) != 0
        return self._costly[name]

    def argument_cost(self, type_: Any, weight: int | None, value: Any) -> int:
        """IBM argument cost of a Python value of an input type (list items summed)."""
        if value is None or value is MISSING:
            return weight or 0
        while isinstance(type_, GraphQLNonNull):
            type_ = type_.of_type
        if isinstance(type_, GraphQLList):
            inner = type_.of_type
            items = value if isinstance(value, list | tuple) else [value]
            return (weight or 0) + sum(self.argument_cost(inner, None, item) for item in items)
        base = weight if weight is not None else self.type_weight(type_)
        if isinstance(type_, GraphQLInputObjectType) and isinstance(value, Mapping):
            for name, item in value.items():
                input_field = type_.fields.get(name)
                if input_field is not None:
                    base += self.argument_cost(
                        input_field.type, self.argument_weight(input_field), item
                    )
        return base

    def _introspection_list_sizes(self) -> dict[tuple[str, str], int]:
        schema = self.schema
        types = list(schema.type_map.values())
        fields = [
            t.fields for t in types if isinstance(t, GraphQLObjectType | GraphQLInterfaceType)
        ]
        all_fields = [f for group in fields for f in group.values()]
        abstract = [t for t in types if isinstance(t, GraphQLInterfaceType | GraphQLUnionType)]
        return {
            ("__Schema", "types"): len(types),
            ("__Schema", "directives"): len(schema.directives),
            ("__Type", "fields"): max((len(f) for f in fields), default=1),
            ("__Type", "interfaces"): max(
                (
                    len(t.interfaces)
                    for t in types
                    if isinstance(t, GraphQLObjectType | GraphQLInterfaceType)
                ),
                default=1,
            ),
            ("__Type", "possibleTypes"): max(
                (len(schema.get_possible_types(t)) for t in abstract), default=1
            ),
            ("__Type", "enumValues"): max(
                (len(t.values) for t in types if isinstance(t, GraphQLEnumType)), default=1
            ),
            ("__Type", "inputFields"): max(
                (len(t.fields) for t in types if isinstance(t, GraphQLInputObjectType)),
                default=1,
            ),
            ("__Field", "args"): max((len(f.args) for f in all_fields), default=1),
            ("__Directive", "args"): max((len(d.args) for d in schema.directives), default=1),
        }

    # ---- compile

    def compile(
        self,
        document: DocumentNode,
        operation_name: str | None = None,
        *,
        operation: OperationDefinitionNode | None = None,
    ) -> CostPlan:
        """Compile the plan of one operation of a validated document (linear, memoised).

        ``operation``, when the caller already selected it, is used as given.
        """
        if operation is None:
            operation = _select_operation(document, operation_name)
        root_type = {
            "query": self.schema.query_type,
            "mutation": self.schema.mutation_type,
            "subscription": self.schema.subscription_type,
        }[operation.operation.value]
        if root_type is None:
            raise GuardError(
                "GRAPHQL_VALIDATION_FAILED", "The schema does not support this operation type."
            )
        fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        defaults: dict[str, Any] = {}
        for definition in operation.variable_definitions or ():
            if definition.default_value is not None:
                defaults[definition.variable.name.value] = literal(definition.default_value)
        compiler = Compiler(self, fragments, operation.operation.value == "mutation")
        root = guarded(compiler.selection, operation.selection_set, root_type, (), True)
        return CostPlan(
            self,
            root,
            operation_type=operation.operation.value,
            operation_name=operation.name.value if operation.name else None,
            defaults=defaults,
            list_arguments=tuple(compiler.list_arguments),
        )


def _select_operation(
    document: DocumentNode, operation_name: str | None
) -> OperationDefinitionNode:
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        raise GuardError("GRAPHQL_VALIDATION_FAILED", "The operation to run cannot be determined.")
    return operation
