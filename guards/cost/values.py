"""GraphQL values as plain Python: literals, variables substituted, schema defaults."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from graphql import GraphQLArgument
from graphql.language import (
    BooleanValueNode,
    EnumValueNode,
    FloatValueNode,
    IntValueNode,
    ListValueNode,
    NullValueNode,
    ObjectValueNode,
    StringValueNode,
    ValueNode,
    VariableNode,
)
from graphql.pyutils import Undefined

MISSING: Any = object()


def ast_value(node: ValueNode, variables: Mapping[str, Any] | None, defaults: Any) -> Any:
    """An AST value as plain Python, variables substituted (``MISSING`` when unknown)."""
    if isinstance(node, VariableNode):
        name = node.name.value
        if variables is not None and name in variables:
            return variables[name]
        if defaults is not None and name in defaults:
            return defaults[name]
        return MISSING
    if isinstance(node, IntValueNode):
        return int(node.value)
    if isinstance(node, FloatValueNode):
        return float(node.value)
    if isinstance(node, StringValueNode | EnumValueNode):
        return node.value
    if isinstance(node, BooleanValueNode):
        return node.value
    if isinstance(node, NullValueNode):
        return None
    if isinstance(node, ListValueNode):
        return [ast_value(v, variables, defaults) for v in node.values]
    if isinstance(node, ObjectValueNode):
        out = {}
        for f in node.fields:
            value = ast_value(f.value, variables, defaults)
            if value is not MISSING:
                out[f.name.value] = value
        return out
    return MISSING


def schema_default(argument: GraphQLArgument) -> Any:
    """An argument's schema default as Python (``Undefined`` when it has none)."""
    default = getattr(argument, "default", None)  # graphql-core >= 3.3
    if default is not None:
        if default.literal is not None:
            return literal(default.literal)
        if default.value is not Undefined:
            return default.value
    return argument.default_value


def has_variables(node: ValueNode) -> bool:
    if isinstance(node, VariableNode):
        return True
    if isinstance(node, ListValueNode):
        return any(has_variables(v) for v in node.values)
    if isinstance(node, ObjectValueNode):
        return any(has_variables(f.value) for f in node.fields)
    return False


def literal(node: ValueNode) -> Any:
    """A directive argument literal as a Python value (no variables in SDL)."""
    return ast_value(node, None, None)
