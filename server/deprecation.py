"""Which deprecated fields an operation selects, so their use can be counted per client."""

from __future__ import annotations

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLSchema,
    OperationDefinitionNode,
    TypeInfo,
    TypeInfoVisitor,
    Visitor,
    get_named_type,
    get_operation_ast,
    visit,
)


class _DeprecatedFieldCollector(Visitor):
    def __init__(self, type_info: TypeInfo) -> None:
        super().__init__()
        self.type_info = type_info
        self.found: dict[str, None] = {}

    def enter_field(self, node: FieldNode, *_: object) -> None:
        definition = self.type_info.get_field_def()
        parent = self.type_info.get_parent_type()
        if definition is not None and parent is not None and definition.deprecation_reason:
            self.found.setdefault(f"{get_named_type(parent).name}.{node.name.value}", None)


class _SpreadCollector(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def enter_fragment_spread(self, node: FragmentSpreadNode, *_: object) -> None:
        self.names.append(node.name.value)


def _reachable_fragments(
    operation: OperationDefinitionNode, document: DocumentNode
) -> list[FragmentDefinitionNode]:
    """The fragments the operation spreads, directly or not, each once."""
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    seen: dict[str, FragmentDefinitionNode] = {}
    pending: list[OperationDefinitionNode | FragmentDefinitionNode] = [operation]
    while pending:
        spreads = _SpreadCollector()
        visit(pending.pop(), spreads)
        for name in spreads.names:
            if name not in seen and name in fragments:
                seen[name] = fragments[name]
                pending.append(fragments[name])
    return list(seen.values())


def deprecated_fields(
    schema: GraphQLSchema, document: DocumentNode, operation_name: str | None = None
) -> list[str]:
    """The deprecated fields ("Type.field") the operation selects, fragments included.

    Each is listed once, in document order; compute it once per (document, operation) and
    count it on every execution. A document that does not match the schema yields what can be
    resolved; an unknown operation yields nothing.
    """
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        return []
    type_info = TypeInfo(schema)
    collector = _DeprecatedFieldCollector(type_info)
    for definition in [operation, *_reachable_fragments(operation, document)]:
        visit(definition, TypeInfoVisitor(type_info, collector))
    return list(collector.found)
