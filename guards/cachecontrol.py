"""An operation's cache policy from Apollo's ``@cacheControl`` hints, for any schema.

The hints are read from the schema's SDL (as the cost engine reads ``@cost``); an operation's
policy follows Apollo Server's rules:

* a field's own ``maxAge`` wins over its return type's; ``inheritMaxAge`` takes the parent's;
* root fields and fields returning an object, interface or union default to ``maxAge: 0``
  (a root field without a hint is never cached); scalar fields inherit their parent's;
* the operation's ``maxAge`` is the smallest of all its fields'; ``PRIVATE`` anywhere wins;
* mutations, subscriptions and introspection (``__schema``, ``__type``) are never cached.

The same walk finds what a cached response must be invalidated by (its *static tags*):
``T:list`` for every list of entities of type ``T`` it selects (a Relay connection counts as
one) unless the list hangs under an entity whose ``id`` the response carries (a write that
changes such a list invalidates that parent's own tag), ``T`` for every entity of type ``T``
it shows without selecting ``id`` (so the entity's own tag cannot be read from the data), and
the ID arguments it passes (a lookup of an id that does not exist yet). An *entity type* is
an object type with an ``id: ID`` field.

    control = CacheControl.from_sdl(sdl)
    info = control.analyse(document, "ProductCatalog")
    info.policy.max_age, info.policy.scope, info.tags
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLID,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLUnionType,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    OperationType,
    SelectionSetNode,
    StringValueNode,
    VariableNode,
    build_schema,
    get_named_type,
    value_from_ast_untyped,
)
from graphql.utilities import get_operation_ast

__all__ = ["CONTROL_SDL", "CacheControl", "CacheHint", "CachePolicy", "DocumentCacheInfo"]

Scope = Literal["PUBLIC", "PRIVATE"]

CONTROL_SDL = """
enum CacheControlScope { PUBLIC PRIVATE }
directive @cacheControl(maxAge: Int, scope: CacheControlScope, inheritMaxAge: Boolean)
  on FIELD_DEFINITION | OBJECT | INTERFACE | UNION
"""
"""Apollo's definition of the directive and its scope enum, as printed in the SDL."""


@dataclass(frozen=True, slots=True)
class CacheHint:
    """One ``@cacheControl`` on a field or type."""

    max_age: int | None = None
    scope: Scope | None = None
    inherit_max_age: bool = False


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """How long an operation's response may be reused, and by whom (``max_age`` 0: never)."""

    max_age: int
    scope: Scope = "PUBLIC"

    @property
    def cacheable(self) -> bool:
        return self.max_age > 0


NOT_CACHEABLE = CachePolicy(0, "PUBLIC")


@dataclass(frozen=True, slots=True)
class DocumentCacheInfo:
    """What one operation of a document means for the cache (computed once per document).

    ``reason`` says why it is not cacheable (``None`` when it is); ``id_variables`` and
    ``id_literals`` are the ID arguments, whose values become entity tags per request.
    """

    policy: CachePolicy
    tags: frozenset[str] = frozenset()
    id_variables: tuple[str, ...] = ()
    id_literals: tuple[str, ...] = ()
    reason: str | None = None


def _hint(element: Any) -> CacheHint | None:
    node = getattr(element, "ast_node", None)
    for directive in getattr(node, "directives", None) or ():
        if directive.name.value != "cacheControl":
            continue
        args = {a.name.value: value_from_ast_untyped(a.value) for a in directive.arguments}
        max_age = args.get("maxAge")
        scope = args.get("scope")
        return CacheHint(
            max_age=int(max_age) if max_age is not None else None,
            scope="PRIVATE" if scope == "PRIVATE" else ("PUBLIC" if scope else None),
            inherit_max_age=bool(args.get("inheritMaxAge")),
        )
    return None


def _unwrap(type_: Any) -> tuple[bool, GraphQLNamedType]:
    """Whether the type is a list (below non-null), and its named type."""
    while isinstance(type_, GraphQLNonNull):
        type_ = type_.of_type
    return isinstance(type_, GraphQLList), get_named_type(type_)


@dataclass
class _Walk:
    """Accumulates one operation's contributions while its selections are walked."""

    max_age: int | None = None
    private: bool = False
    reason: str | None = None
    tags: set[str] = field(default_factory=set)
    id_variables: set[str] = field(default_factory=set)
    id_literals: set[str] = field(default_factory=set)

    def contribute(self, max_age: int, why: str) -> None:
        if self.max_age is None or max_age < self.max_age:
            self.max_age = max_age
            if max_age <= 0 and self.reason is None:
                self.reason = why


class CacheControl:
    """Reads ``@cacheControl`` hints from a schema and computes operations' policies."""

    def __init__(self, schema: GraphQLSchema) -> None:
        self.schema = schema
        self._type_hints: dict[str, CacheHint | None] = {}
        self._field_hints: dict[tuple[str, str], CacheHint | None] = {}
        self.entity_types = frozenset(
            name
            for name, named in schema.type_map.items()
            if isinstance(named, GraphQLObjectType)
            and not name.startswith("__")
            and "id" in named.fields
            and get_named_type(named.fields["id"].type) is GraphQLID
        )

    @classmethod
    def from_sdl(cls, sdl: str) -> CacheControl:
        """Build from SDL text (the directive's definition is added when the SDL lacks it)."""
        if "directive @cacheControl" not in sdl:
            sdl = CONTROL_SDL + sdl
        return cls(build_schema(sdl))

    # -- hints --------------------------------------------------------------------------------

    def type_hint(self, named: GraphQLNamedType) -> CacheHint | None:
        if named.name not in self._type_hints:
            self._type_hints[named.name] = _hint(named)
        return self._type_hints[named.name]

    def _return_hint(self, named: GraphQLNamedType) -> CacheHint | None:
        """A type's hint; for an interface or union, folded with every possible type's.

        Fields under ``... on Order`` are Order's, but the field returning the interface is
        what Apollo consults: folding makes ``node(id:)`` PRIVATE when any type it may return
        is, and no longer-lived than the shortest-lived of them.
        """
        own = self.type_hint(named)
        if isinstance(named, GraphQLObjectType):
            return own
        key = "abstract:" + named.name
        if key in self._type_hints:
            return self._type_hints[key]
        hints = [own, *(self.type_hint(t) for t in self._possible(named))]
        private = any(h is not None and h.scope == "PRIVATE" for h in hints)
        ages = [h.max_age for h in hints[1:] if h is not None and h.max_age is not None]
        complete = len(ages) == len(hints) - 1
        max_age = min(ages) if ages and complete else None
        if own is not None and own.max_age is not None:
            max_age = own.max_age if max_age is None else min(max_age, own.max_age)
        folded = CacheHint(max_age, "PRIVATE" if private else None, False)
        self._type_hints[key] = folded
        return folded

    def field_hint(self, parent: str, name: str, definition: GraphQLField) -> CacheHint | None:
        key = (parent, name)
        if key not in self._field_hints:
            self._field_hints[key] = _hint(definition)
        return self._field_hints[key]

    # -- analysis -----------------------------------------------------------------------------

    def analyse(self, document: DocumentNode, operation_name: str | None) -> DocumentCacheInfo:
        """The policy and static tags of one operation of a validated document."""
        operation = get_operation_ast(document, operation_name)
        if operation is None:
            return DocumentCacheInfo(NOT_CACHEABLE, reason="no such operation")
        if operation.operation is not OperationType.QUERY:
            return DocumentCacheInfo(NOT_CACHEABLE, reason=operation.operation.value)
        fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        walk = _Walk()
        root = self.schema.query_type
        assert root is not None
        self._selections(walk, root, operation.selection_set, fragments, root=True)
        max_age = walk.max_age if walk.max_age is not None else 0
        reason = walk.reason if max_age <= 0 else None
        if walk.max_age is None:
            reason = "selects no field"
        return DocumentCacheInfo(
            CachePolicy(max(0, max_age), "PRIVATE" if walk.private else "PUBLIC"),
            frozenset(walk.tags),
            tuple(sorted(walk.id_variables)),
            tuple(sorted(walk.id_literals)),
            reason,
        )

    def _flatten(
        self,
        parent: GraphQLNamedType,
        selection_set: SelectionSetNode,
        fragments: dict[str, FragmentDefinitionNode],
        condition: str | None,
        out: list[tuple[str | None, FieldNode]],
        seen: frozenset[str] = frozenset(),
    ) -> None:
        """The fields of one level, each with the type condition it sits under."""
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                out.append((condition, selection))
            elif isinstance(selection, InlineFragmentNode):
                cond = selection.type_condition.name.value if selection.type_condition else None
                self._flatten(
                    parent, selection.selection_set, fragments, cond or condition, out, seen
                )
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = fragments.get(name)
                if fragment is None or name in seen:
                    continue
                self._flatten(
                    parent,
                    fragment.selection_set,
                    fragments,
                    fragment.type_condition.name.value,
                    out,
                    seen | {name},
                )

    def _possible(self, named: GraphQLNamedType) -> list[GraphQLObjectType]:
        if isinstance(named, GraphQLObjectType):
            return [named]
        if isinstance(named, GraphQLInterfaceType | GraphQLUnionType):
            return list(self.schema.get_possible_types(named))
        return []

    def _selections(
        self,
        walk: _Walk,
        parent: GraphQLNamedType,
        selection_set: SelectionSetNode,
        fragments: dict[str, FragmentDefinitionNode],
        *,
        root: bool = False,
        anchored: bool = False,
        identified: bool = False,
    ) -> None:
        fields: list[tuple[str | None, FieldNode]] = []
        self._flatten(parent, selection_set, fragments, None, fields)
        if not root:
            # An entity looked up by an ID argument is named by that argument's tag.
            uncovered = set() if identified else self._entity_tags(walk, parent, fields)
            if any(p.name in self.entity_types for p in self._possible(parent)):
                # Lists below hang under an entity: identified when every type it may be
                # carries its id. Connections and edges pass their parent's answer down.
                anchored = not uncovered
        else:
            anchored = False
        for condition, node in fields:
            name = node.name.value
            if name == "__typename":
                continue
            if name in ("__schema", "__type"):
                walk.contribute(0, "introspection")
                continue
            owner = self.schema.get_type(condition) if condition else parent
            definitions = getattr(owner, "fields", None) or {}
            definition = definitions.get(name)
            if owner is None or definition is None:
                continue
            self._ids(walk, node, definition)
            is_list, named = _unwrap(definition.type)
            field_hint = self.field_hint(owner.name, name, definition)
            composite = isinstance(
                named, GraphQLObjectType | GraphQLInterfaceType | GraphQLUnionType
            )
            type_hint = self._return_hint(named) if composite else None
            for hint in (field_hint, type_hint):
                if hint is not None and hint.scope == "PRIVATE":
                    walk.private = True
            where = f"{owner.name}.{name}"
            if field_hint is not None and field_hint.max_age is not None:
                if not field_hint.inherit_max_age or root:
                    walk.contribute(field_hint.max_age, f"{where} has maxAge 0")
            elif composite or root:
                inherit = (field_hint is not None and field_hint.inherit_max_age) or (
                    type_hint is not None and type_hint.inherit_max_age
                )
                if type_hint is not None and type_hint.max_age is not None and not inherit:
                    walk.contribute(type_hint.max_age, f"{named.name} has maxAge 0")
                elif not inherit or root:
                    walk.contribute(0, f"{where} has no @cacheControl hint")
            if composite:
                element = self._list_element(named) if not is_list else named
                if element is not None and (is_list or element is not named) and not anchored:
                    for possible in self._possible(element):
                        if possible.name in self.entity_types:
                            walk.tags.add(f"{possible.name}:list")
                if node.selection_set is not None:
                    self._selections(
                        walk,
                        named,
                        node.selection_set,
                        fragments,
                        anchored=anchored,
                        identified=not is_list and self._looked_up(node, definition),
                    )

    def _list_element(self, named: GraphQLNamedType) -> GraphQLNamedType | None:
        """A Relay connection's node type (an object with a ``nodes`` list), else itself."""
        nodes = (getattr(named, "fields", None) or {}).get("nodes")
        if nodes is not None:
            is_list, element = _unwrap(nodes.type)
            if is_list:
                return element
        return named

    def _entity_tags(
        self, walk: _Walk, parent: GraphQLNamedType, fields: list[tuple[str | None, FieldNode]]
    ) -> set[str]:
        """Tag ``T`` for each entity type shown here without an ``id`` the data will carry;
        returns those types."""
        uncovered: set[str] = set()
        for possible in self._possible(parent):
            if possible.name not in self.entity_types:
                continue
            covered = any(
                node.name.value == "id"
                and (node.alias is None or node.alias.value == "id")
                and not node.directives
                and condition in (None, parent.name, possible.name)
                for condition, node in fields
            )
            if not covered:
                walk.tags.add(possible.name)
                uncovered.add(possible.name)
        return uncovered

    @staticmethod
    def _looked_up(node: FieldNode, definition: GraphQLField) -> bool:
        """A field given one ID (not a list of them): it returns the entity that id names."""
        for argument in node.arguments or ():
            arg_def = definition.args.get(argument.name.value)
            if arg_def is None:
                continue
            is_list, named = _unwrap(arg_def.type)
            if named is GraphQLID and not is_list and not node.directives:
                return True
        return False

    @staticmethod
    def _ids(walk: _Walk, node: FieldNode, definition: GraphQLField) -> None:
        for argument in node.arguments or ():
            arg_def = definition.args.get(argument.name.value)
            if arg_def is None or _unwrap(arg_def.type)[1] is not GraphQLID:
                continue
            value = argument.value
            values = value.values if isinstance(value, ListValueNode) else (value,)
            for item in values:
                if isinstance(item, VariableNode):
                    walk.id_variables.add(item.name.value)
                elif isinstance(item, StringValueNode | IntValueNode):
                    walk.id_literals.add(item.value)
