"""Compiles an operation's selection sets into plan nodes, once per document."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLUnionType,
    InlineFragmentNode,
    SelectionSetNode,
)
from graphql.language import (
    BooleanValueNode,
    ValueNode,
    VariableNode,
)
from graphql.type import (
    SchemaMetaFieldDef,
    TypeMetaFieldDef,
    TypeNameMetaFieldDef,
)

from guards.cost.nodes import CompiledField, Selection, slicing_size
from guards.cost.values import MISSING, has_variables, literal, schema_default
from guards.errors import GuardError

if TYPE_CHECKING:
    from guards.cost.model import CostModel


class Compiler:
    """Compiles selection sets per (selection set, concrete type, sized fields), memoised."""

    def __init__(
        self, model: CostModel, fragments: dict[str, FragmentDefinitionNode], is_mutation: bool
    ) -> None:
        self.model = model
        self.fragments = fragments
        self.is_mutation = is_mutation
        self.memo: dict[tuple[int, str, tuple[str, ...]], Selection] = {}
        self.active: set[tuple[int, str, tuple[str, ...]]] = set()
        # Slicing arguments of list type: (value or ValueNode, path), for the length check.
        self.list_arguments: list[tuple[Any, tuple[str, ...]]] = []

    def applies(self, condition: str | None, concrete: GraphQLObjectType) -> bool:
        if condition is None or condition == concrete.name:
            return True
        named = self.model.schema.get_type(condition)
        if isinstance(named, GraphQLInterfaceType | GraphQLUnionType):
            return self.model.schema.is_sub_type(named, concrete)
        return False

    def selection(
        self,
        selection_set: SelectionSetNode,
        concrete: GraphQLObjectType,
        sized: tuple[str, ...],
        root: bool = False,
    ) -> Selection:
        key = (id(selection_set), concrete.name, sized)
        found = self.memo.get(key)
        if found is not None:
            return found
        if key in self.active:
            raise GuardError("GRAPHQL_VALIDATION_FAILED", "Fragments must not spread in a cycle.")
        self.active.add(key)
        sel = Selection()
        for node in selection_set.selections:
            skip, conds = _conditions(node.directives)
            if skip:
                continue
            if isinstance(node, FieldNode):
                compiled = self.field(node, concrete, sized, root)
                if compiled is None:
                    continue
                compiled.conds = conds
                if conds or not compiled.static:
                    sel.static = False
                if compiled.name == "__typename":
                    sel.typename_keys.append(compiled.key)
                    continue
                sel.fields.append(compiled)
                continue
            if isinstance(node, InlineFragmentNode):
                condition = node.type_condition.name.value if node.type_condition else None
                inner_set = node.selection_set
            elif isinstance(node, FragmentSpreadNode):
                definition = self.fragments.get(node.name.value)
                if definition is None:
                    raise GuardError("GRAPHQL_VALIDATION_FAILED", "Unknown fragment.")
                condition = definition.type_condition.name.value
                inner_set = definition.selection_set
            else:  # pragma: no cover - no other selection kinds exist
                continue
            if not self.applies(condition, concrete):
                continue
            part = self.selection(inner_set, concrete, sized, root)
            if conds or not part.static:
                sel.static = False
            sel.parts.append((conds, part))
        self.active.discard(key)
        self.memo[key] = sel
        return sel

    def field(
        self, node: FieldNode, parent: GraphQLObjectType, sized: tuple[str, ...], root: bool
    ) -> CompiledField | None:
        model = self.model
        name = node.name.value
        definition = _field_definition(model.schema, parent, name)
        if definition is None:
            raise GuardError(
                "GRAPHQL_VALIDATION_FAILED",
                "Cannot price a document that does not match the schema.",
            )
        compiled = CompiledField(node.alias.value if node.alias else name, name)
        if name == "__typename":
            compiled.leaf_weight = 0
            return compiled
        if root and self.is_mutation and not name.startswith("__"):
            compiled.surcharge = model.mutation_weight

        # arguments
        for argument in node.arguments or ():
            arg_def = definition.args.get(argument.name.value)
            if arg_def is None:
                continue
            weight = model.argument_weight(arg_def)
            if weight is None and not model.is_costly(arg_def.type):
                continue
            if has_variables(argument.value):
                compiled.arg_dynamic.append((arg_def, weight, argument.value))
                compiled.static = False
            else:
                compiled.arg_const += model.argument_cost(
                    arg_def.type, weight, literal(argument.value)
                )

        # list size
        type_ = definition.type
        while isinstance(type_, GraphQLNonNull):
            type_ = type_.of_type
        lists = 0
        while isinstance(type_, GraphQLList | GraphQLNonNull):
            if isinstance(type_, GraphQLList):
                lists += 1
            type_ = type_.of_type
        named: GraphQLNamedType = type_
        compiled.is_list = lists > 0
        compiled.extra_lists = model.default_list_size ** max(0, lists - 1)
        list_size = model.field_list_size(parent.name, name, definition)
        compiled.size_from_parent = name in sized
        child_sized: tuple[str, ...] = ()
        if list_size is not None:
            child_sized = list_size.sized_fields
            compiled.parent_sized = bool(child_sized)
            args_by_name = {a.name.value: a.value for a in node.arguments or ()}
            for path in list_size.slicing_arguments:
                head, *rest = path.split(".")
                arg_def = definition.args.get(head)
                if arg_def is None:
                    continue
                default = schema_default(arg_def)
                value_node = args_by_name.get(head)
                if value_node is not None and _is_list_type(arg_def.type):
                    self.list_arguments.append(
                        (
                            value_node if has_variables(value_node) else literal(value_node),
                            tuple(rest),
                        )
                    )
                if value_node is not None and has_variables(value_node):
                    compiled.slicing.append((value_node, tuple(rest), default))
                    compiled.static = False
                else:
                    value = literal(value_node) if value_node is not None else MISSING
                    compiled.slicing.append((value, tuple(rest), default))
            if list_size.assumed_size is not None:
                compiled.slicing_fallback = max(0, list_size.assumed_size)
            elif compiled.slicing:
                compiled.slicing_fallback = model.max_page_size
            else:
                compiled.slicing_fallback = model.default_list_size
            if not compiled.slicing:
                compiled.fixed_size = compiled.slicing_fallback
        elif (parent.name, name) in model.introspection_sizes:
            compiled.fixed_size = max(1, model.introspection_sizes[(parent.name, name)])
        else:
            compiled.fixed_size = model.default_list_size
        # Variable-free slicing arguments resolve now.
        if compiled.slicing and all(not isinstance(v, ValueNode) for v, _, _ in compiled.slicing):
            compiled.fixed_size = slicing_size(compiled, None, None, model.max_page_size)
            compiled.slicing = []

        # weights and children
        override = model.field_weight(parent.name, name, definition)
        if not isinstance(named, GraphQLObjectType | GraphQLInterfaceType | GraphQLUnionType):
            compiled.leaf_weight = override if override is not None else model.type_weight(named)
            if not (
                compiled.leaf_weight
                or compiled.arg_const
                or compiled.arg_dynamic
                or compiled.surcharge
            ):
                return None  # free leaves need no place in the plan
            return compiled
        if node.selection_set is None:  # invalid, but price what is there
            compiled.leaf_weight = 0
            return compiled
        for concrete in model.possible_types(named):
            weight = override if override is not None else model.type_weight(concrete)
            child = self.selection(node.selection_set, concrete, child_sized)
            if not child.static:
                compiled.static = False
            compiled.children.append((weight, child))
            compiled.type_names.append(concrete.name)
        return compiled


def _is_list_type(type_: Any) -> bool:
    while isinstance(type_, GraphQLNonNull):
        type_ = type_.of_type
    return isinstance(type_, GraphQLList)


def _field_definition(
    schema: GraphQLSchema, parent: GraphQLObjectType, name: str
) -> GraphQLField | None:
    if name.startswith("__"):
        if name == "__typename":
            return TypeNameMetaFieldDef
        if parent is schema.query_type:
            if name == "__schema":
                return SchemaMetaFieldDef
            if name == "__type":
                return TypeMetaFieldDef
    return parent.fields.get(name)


def _conditions(directives: Sequence[Any] | None) -> tuple[bool, tuple[tuple[str, bool], ...]]:
    """(statically skipped, variable conditions as (variable, value that skips))."""
    conds: list[tuple[str, bool]] = []
    for directive in directives or ():
        name = directive.name.value
        if name not in ("skip", "include"):
            continue
        for argument in directive.arguments or ():
            if argument.name.value != "if":
                continue
            skips_when = name == "skip"
            value = argument.value
            if isinstance(value, BooleanValueNode):
                if value.value is skips_when:
                    return True, ()
            elif isinstance(value, VariableNode):
                conds.append((value.name.value, skips_when))
    return False, tuple(conds)
