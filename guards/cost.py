"""The cost engine (request path steps 7 and 10): IBM cost directives, compiled once, priced often.

    model = CostModel.from_schema(schema)             # once per schema
    plan = model.compile(document, "OrdersPage")      # once per document (cache it)
    estimate = plan.evaluate({"first": 50})           # per request, microseconds
    estimate.requested, estimate.nodes                # 10152, 10152
    check_estimate(estimate, limits)                  # COST_LIMIT_EXCEEDED / NODE_LIMIT_EXCEEDED
    ...execute...
    actual = estimate.actual(result.data)             # <= estimate.requested

The model (IBM GraphQL Cost Directives with integer weights, as Apollo, Hive and Grafbase):

* A composite field costs ``instances x (type weight + cost of its selection)`` plus its
  arguments' costs; ``@cost`` on the field replaces the type weight. Objects weigh 1 (or their
  ``@cost``), scalars and enums 0 (or their ``@cost``), introspection types
  ``introspection_weight`` (0 by default: they are served from memory, but their nodes count).
* ``instances`` is 1 for a non-list field. For a list it is the largest slicing argument given
  (variables resolved, then the operation's variable default, then the schema default),
  an Int clamped to ``1..max_page_size`` (negative, zero and huge values clamp; null or a
  non-integer prices as ``max_page_size``) and a list argument by its length; else
  ``assumedSize``; else, for a field named in its parent's ``sizedFields``, the parent's size;
  else ``default_list_size`` (introspection lists: the exact maxima of this schema).
  Slicing arguments declared but absent, without schema default or ``assumedSize``, price
  at ``max_page_size``; ``requireOneSlicingArgument`` is not turned into an error.
* Interfaces and unions cost their most expensive possible type, selection included
  (the selection is compiled per concrete type, so type conditions are exact).
* Argument cost (IBM): ``@cost`` of the argument plus, by type, input objects 1 (each item of
  a list of them too) plus their input fields, scalars and enums their ``@cost`` or 0.
* Each root field of a mutation adds ``mutation_weight`` (10). A field's cost is never
  negative (IBM: clamped to 0). ``@skip``/``@include`` are honoured when their value is known
  (literal, variable, or variable default); unknown conditions are priced as included.
* ``nodes`` is the largest number of objects the operation may return (GitHub's node count):
  the same walk with every object weighing 1 and no argument or mutation surcharge.

Evaluation memoises each fragment's compiled selection per request and caches selections
that depend on no variable across requests, so a spread repeated 2^25 times through a
fragment chain costs one visit per fragment. Actual cost walks the result ``data`` along
the same plan: objects really returned, each list counted by its real length but never
more than the size it was priced at (so ``actual <= requested`` holds for every response;
lists longer than priced are reported as ``overflow`` for calibration).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
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
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    build_schema,
    validate,
)
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
from graphql.type import (
    SchemaMetaFieldDef,
    TypeMetaFieldDef,
    TypeNameMetaFieldDef,
    introspection_types,
)

from guards.errors import GuardError
from guards.gate import check_document
from guards.limits import Limits, apply_limit

__all__ = [
    "ActualCost",
    "CostEstimate",
    "CostItem",
    "CostModel",
    "CostPlan",
    "check_estimate",
    "price_document",
]

_MISSING: Any = object()
_T = TypeVar("_T")
_STATIC_CACHE_MAX = 256  # distinct parent sizes remembered per variable-free selection
_BREAKDOWN_MAX = 5_000


# --------------------------------------------------------------------------- directives


@dataclass(frozen=True)
class _ListSize:
    assumed_size: int | None = None
    slicing_arguments: tuple[str, ...] = ()
    sized_fields: tuple[str, ...] = ()
    require_one_slicing_argument: bool = True


def _literal(node: ValueNode) -> Any:
    """A directive argument literal as a Python value (no variables in SDL)."""
    return _ast_value(node, None, None)


def _directive_args(element: Any, name: str) -> dict[str, Any] | None:
    """Arguments of directive ``name`` on a schema element, from its SDL AST nodes."""
    nodes = [
        getattr(element, "ast_node", None),
        *(getattr(element, "extension_ast_nodes", ()) or ()),
    ]
    for node in nodes:
        for directive in getattr(node, "directives", None) or ():
            if directive.name.value == name:
                return {arg.name.value: _literal(arg.value) for arg in directive.arguments}
    return None


def _extension_directives(element: Any) -> Iterable[Any]:
    """Directive objects a code-first library keeps in ``extensions`` (duck-typed)."""
    extensions = getattr(element, "extensions", None) or {}
    for value in extensions.values():
        yield from getattr(value, "directives", None) or ()


def _read_cost(element: Any) -> int | None:
    args = _directive_args(element, "cost")
    if args is not None and args.get("weight") is not None:
        return _weight_int(args["weight"])
    extensions = getattr(element, "extensions", None) or {}
    if "cost" in extensions:
        raw = extensions["cost"]
        return _weight_int(getattr(raw, "weight", raw))
    for directive in _extension_directives(element):
        weight = getattr(directive, "weight", None)
        if isinstance(weight, int | float | str) and not isinstance(weight, bool):
            return _weight_int(weight)
    return None


def _weight_int(raw: Any) -> int:
    # IBM declares weight as a String holding a float; Apollo as Int. Round up: an upper bound.
    value = float(raw)
    as_int = int(value)
    return as_int + 1 if value > as_int else as_int


def _read_list_size(element: Any) -> _ListSize | None:
    args = _directive_args(element, "listSize")
    if args is None:
        extensions = getattr(element, "extensions", None) or {}
        raw = extensions.get("listSize")
        if isinstance(raw, Mapping):
            args = dict(raw)
        else:
            for directive in _extension_directives(element):
                if hasattr(directive, "slicing_arguments") or hasattr(directive, "assumed_size"):
                    args = {
                        "assumedSize": getattr(directive, "assumed_size", None),
                        "slicingArguments": getattr(directive, "slicing_arguments", None),
                        "sizedFields": getattr(directive, "sized_fields", None),
                        "requireOneSlicingArgument": getattr(
                            directive, "require_one_slicing_argument", True
                        ),
                    }
                    break
    if args is None:
        return None

    def strings(value: Any) -> tuple[str, ...]:
        return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()

    assumed = args.get("assumedSize")
    require = args.get("requireOneSlicingArgument")
    return _ListSize(
        assumed_size=assumed
        if isinstance(assumed, int) and not isinstance(assumed, bool)
        else None,
        slicing_arguments=strings(args.get("slicingArguments")),
        sized_fields=strings(args.get("sizedFields")),
        require_one_slicing_argument=require if isinstance(require, bool) else True,
    )


# --------------------------------------------------------------------------- values


def _ast_value(node: ValueNode, variables: Mapping[str, Any] | None, defaults: Any) -> Any:
    """An AST value as plain Python, variables substituted (``_MISSING`` when unknown)."""
    if isinstance(node, VariableNode):
        name = node.name.value
        if variables is not None and name in variables:
            return variables[name]
        if defaults is not None and name in defaults:
            return defaults[name]
        return _MISSING
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
        return [_ast_value(v, variables, defaults) for v in node.values]
    if isinstance(node, ObjectValueNode):
        out = {}
        for f in node.fields:
            value = _ast_value(f.value, variables, defaults)
            if value is not _MISSING:
                out[f.name.value] = value
        return out
    return _MISSING


def _schema_default(argument: GraphQLArgument) -> Any:
    """An argument's schema default as Python (``Undefined`` when it has none)."""
    default = getattr(argument, "default", None)  # graphql-core >= 3.3
    if default is not None:
        if default.literal is not None:
            return _literal(default.literal)
        if default.value is not Undefined:
            return default.value
    return argument.default_value


def _has_variables(node: ValueNode) -> bool:
    if isinstance(node, VariableNode):
        return True
    if isinstance(node, ListValueNode):
        return any(_has_variables(v) for v in node.values)
    if isinstance(node, ObjectValueNode):
        return any(_has_variables(f.value) for f in node.fields)
    return False


# --------------------------------------------------------------------------- plan nodes


class _Sel:
    """A selection set compiled for one concrete object type (and sized-field context)."""

    __slots__ = ("cache", "fields", "parts", "static", "typename_keys")

    def __init__(self) -> None:
        self.fields: list[_Field] = []
        self.parts: list[tuple[tuple[tuple[str, bool], ...], _Sel]] = []
        self.typename_keys: list[str] = []
        self.static = True
        self.cache: dict[int | None, tuple[int, int]] = {}


class _Field:
    """One field node of the document, compiled against one concrete parent type."""

    __slots__ = (
        "arg_const",
        "arg_dynamic",
        "children",
        "conds",
        "extra_lists",
        "fixed_size",
        "is_list",
        "key",
        "leaf_weight",
        "name",
        "parent_sized",
        "size_from_parent",
        "slicing",
        "slicing_fallback",
        "static",
        "surcharge",
        "type_names",
    )

    def __init__(self, key: str, name: str) -> None:
        self.key = key
        self.name = name
        self.conds: tuple[tuple[str, bool], ...] = ()  # (variable, value that skips)
        self.is_list = False
        self.extra_lists = 1  # default_list_size ** (list nesting - 1)
        self.fixed_size = 1  # size when no slicing argument applies
        self.slicing: list[
            tuple[Any, tuple[str, ...], Any]
        ] = []  # (value|ValueNode, path, default)
        self.slicing_fallback = 1
        self.size_from_parent = False  # named in the parent's sizedFields
        self.parent_sized = False  # hands its size to its own sizedFields
        self.leaf_weight: int | None = None  # None: composite
        self.children: list[tuple[int, _Sel]] = []  # (type weight, selection) per concrete type
        self.type_names: list[str] = []
        self.arg_const = 0
        self.arg_dynamic: list[tuple[GraphQLArgument, int | None, ValueNode]] = []
        self.surcharge = 0
        self.static = True


@dataclass(frozen=True)
class CostItem:
    """One line of a breakdown: response path, per-instance weight, instances, total cost."""

    path: str
    weight: int
    multiplier: int
    subtotal: int


@dataclass(frozen=True)
class ActualCost:
    """Cost counted from a response: cost, objects, and lists longer than they were priced."""

    cost: int
    nodes: int
    overflow: int


class CostEstimate:
    """The requested (static) cost of one request and its node count."""

    __slots__ = ("_plan", "_variables", "nodes", "requested")

    def __init__(
        self, plan: CostPlan, variables: Mapping[str, Any] | None, requested: int, nodes: int
    ) -> None:
        self._plan = plan
        self._variables = variables
        self.requested = requested
        self.nodes = nodes

    def breakdown(self) -> list[CostItem]:
        """Per-field costs in document order (computed on demand, for dry runs)."""
        return self._plan.breakdown(self._variables)

    def actual(self, data: Mapping[str, Any] | None) -> int:
        """Actual cost of the response ``data`` of this request."""
        return self._plan.actual(data, self._variables)

    def longest_list_argument(self) -> int:
        """The most items any list-typed slicing argument of this request carries."""
        return self._plan.longest_list_argument(self._variables)

    def __repr__(self) -> str:
        return f"CostEstimate(requested={self.requested}, nodes={self.nodes})"


# --------------------------------------------------------------------------- model


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
        self._list_size: dict[tuple[str, str], _ListSize | None] = {}
        self._arg_cost: dict[int, int | None] = {}
        self._costly: dict[str, bool] = {}
        self._introspection_sizes = self._introspection_list_sizes()
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
            declared = _read_cost(named)
            if declared is not None:
                weight = declared
            elif name in introspection_types:
                weight = self.introspection_weight if isinstance(named, GraphQLObjectType) else 0
            elif isinstance(named, GraphQLScalarType | GraphQLEnumType):
                weight = 0
            elif isinstance(named, GraphQLInterfaceType | GraphQLUnionType):
                weight = max((self.type_weight(t) for t in self._possible_types(named)), default=1)
            else:
                weight = 1
            self._type_weight[name] = weight
        return weight

    def _possible_types(self, named: GraphQLNamedType) -> list[GraphQLObjectType]:
        if isinstance(named, GraphQLObjectType):
            return [named]
        found = self._possible.get(named.name)
        if found is None:
            found = list(self.schema.get_possible_types(named))  # type: ignore[arg-type]
            self._possible[named.name] = found
        return found

    def _field_weight(self, parent: str, name: str, definition: GraphQLField) -> int | None:
        key = (parent, name)
        if key not in self._field_cost:
            self._field_cost[key] = _read_cost(definition)
        return self._field_cost[key]

    def _field_list_size(
        self, parent: str, name: str, definition: GraphQLField
    ) -> _ListSize | None:
        key = (parent, name)
        if key not in self._list_size:
            self._list_size[key] = _read_list_size(definition)
        return self._list_size[key]

    def _argument_weight(self, element: GraphQLArgument | GraphQLInputField) -> int | None:
        key = id(element)
        if key not in self._arg_cost:
            self._arg_cost[key] = _read_cost(element)
        return self._arg_cost[key]

    def _is_costly(self, type_: Any) -> bool:
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
        if value is None or value is _MISSING:
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
                        input_field.type, self._argument_weight(input_field), item
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
                defaults[definition.variable.name.value] = _literal(definition.default_value)
        compiler = _Compiler(self, fragments, operation.operation.value == "mutation")
        root = _guarded(compiler.selection, operation.selection_set, root_type, (), True)
        return CostPlan(
            self,
            root,
            operation_type=operation.operation.value,
            operation_name=operation.name.value if operation.name else None,
            defaults=defaults,
            list_arguments=tuple(compiler.list_arguments),
        )


def _guarded(function: Callable[..., _T], *args: Any) -> _T:
    """Run a recursive walk; a stack overflow becomes a clean GuardError."""
    try:
        return function(*args)
    except RecursionError:
        pass
    # Raised outside the except block so the deep traceback is released first.
    raise GuardError(
        "DEPTH_LIMIT_EXCEEDED", "Document or variables are nested too deeply to price."
    )


def _select_operation(
    document: DocumentNode, operation_name: str | None
) -> OperationDefinitionNode:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is None and len(operations) == 1:
        return operations[0]
    for operation in operations:
        if operation_name is not None and operation.name and operation.name.value == operation_name:
            return operation
    raise GuardError("GRAPHQL_VALIDATION_FAILED", "The operation to run cannot be determined.")


class _Compiler:
    """Compiles selection sets per (selection set, concrete type, sized fields), memoised."""

    def __init__(
        self, model: CostModel, fragments: dict[str, FragmentDefinitionNode], is_mutation: bool
    ) -> None:
        self.model = model
        self.fragments = fragments
        self.is_mutation = is_mutation
        self.memo: dict[tuple[int, str, tuple[str, ...]], _Sel] = {}
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
    ) -> _Sel:
        key = (id(selection_set), concrete.name, sized)
        found = self.memo.get(key)
        if found is not None:
            return found
        if key in self.active:
            raise GuardError("GRAPHQL_VALIDATION_FAILED", "Fragments must not spread in a cycle.")
        self.active.add(key)
        sel = _Sel()
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
    ) -> _Field | None:
        model = self.model
        name = node.name.value
        definition = _field_definition(model.schema, parent, name)
        if definition is None:
            raise GuardError(
                "GRAPHQL_VALIDATION_FAILED",
                "Cannot price a document that does not match the schema.",
            )
        compiled = _Field(node.alias.value if node.alias else name, name)
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
            weight = model._argument_weight(arg_def)
            if weight is None and not model._is_costly(arg_def.type):
                continue
            if _has_variables(argument.value):
                compiled.arg_dynamic.append((arg_def, weight, argument.value))
                compiled.static = False
            else:
                compiled.arg_const += model.argument_cost(
                    arg_def.type, weight, _literal(argument.value)
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
        list_size = model._field_list_size(parent.name, name, definition)
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
                default = _schema_default(arg_def)
                value_node = args_by_name.get(head)
                if value_node is not None and _is_list_type(arg_def.type):
                    self.list_arguments.append(
                        (
                            value_node if _has_variables(value_node) else _literal(value_node),
                            tuple(rest),
                        )
                    )
                if value_node is not None and _has_variables(value_node):
                    compiled.slicing.append((value_node, tuple(rest), default))
                    compiled.static = False
                else:
                    value = _literal(value_node) if value_node is not None else _MISSING
                    compiled.slicing.append((value, tuple(rest), default))
            if list_size.assumed_size is not None:
                compiled.slicing_fallback = max(0, list_size.assumed_size)
            elif compiled.slicing:
                compiled.slicing_fallback = model.max_page_size
            else:
                compiled.slicing_fallback = model.default_list_size
            if not compiled.slicing:
                compiled.fixed_size = compiled.slicing_fallback
        elif (parent.name, name) in model._introspection_sizes:
            compiled.fixed_size = max(1, model._introspection_sizes[(parent.name, name)])
        else:
            compiled.fixed_size = model.default_list_size
        # Variable-free slicing arguments resolve now.
        if compiled.slicing and all(not isinstance(v, ValueNode) for v, _, _ in compiled.slicing):
            compiled.fixed_size = _slicing_size(compiled, None, None, model.max_page_size)
            compiled.slicing = []

        # weights and children
        override = model._field_weight(parent.name, name, definition)
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
        for concrete in model._possible_types(named):
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


def _skipped(
    conds: tuple[tuple[str, bool], ...],
    variables: Mapping[str, Any] | None,
    defaults: Mapping[str, Any],
) -> bool:
    for name, skips_when in conds:
        if variables is not None and name in variables:
            value = variables[name]
        else:
            value = defaults.get(name)
        if value is skips_when:
            return True
    return False


def _size_of(value: Any, path: tuple[str, ...], max_page: int) -> int | None:
    """One slicing value as a list size; None when absent."""
    for step in path:
        if not isinstance(value, Mapping) or step not in value:
            return None
        value = value[step]
    if value is _MISSING:
        return None
    if isinstance(value, bool) or value is None:
        return max_page
    if isinstance(value, int):
        return min(max(value, 1), max_page)
    if isinstance(value, float):
        return min(max(int(value), 1), max_page) if value.is_integer() else max_page
    if isinstance(value, list | tuple):
        return max(len(value), 1)  # a list argument is exactly as long as it is
    return max_page


def _slicing_size(
    compiled: _Field,
    variables: Mapping[str, Any] | None,
    defaults: Mapping[str, Any] | None,
    max_page: int,
) -> int:
    best: int | None = None
    for value, path, schema_default in compiled.slicing:
        if isinstance(value, ValueNode):
            value = _ast_value(value, variables, defaults)
        if value is _MISSING:
            # Omitted (or a variable not sent, without default): the schema default applies.
            if schema_default is Undefined:
                continue
            value = schema_default
        size = _size_of(value, path, max_page)
        if size is not None and (best is None or size > best):
            best = size
    return compiled.slicing_fallback if best is None else best


# --------------------------------------------------------------------------- plan


class CostPlan:
    """A compiled operation: evaluate per request, count actual cost from the response."""

    def __init__(
        self,
        model: CostModel,
        root: _Sel,
        *,
        operation_type: str,
        operation_name: str | None,
        defaults: dict[str, Any],
        list_arguments: tuple[tuple[Any, tuple[str, ...]], ...] = (),
    ) -> None:
        self.model = model
        self.list_arguments = list_arguments
        self.operation_type = operation_type
        self.operation_name = operation_name
        self._root = root
        self._defaults = defaults
        self._max_page = model.max_page_size
        self._merged: dict[tuple[int, ...], dict[str, _Merged]] = {}
        self._static: tuple[int, int] | None = (
            _guarded(self._eval_sel, root, None, None, {}) if root.static else None
        )

    @property
    def static(self) -> bool:
        """True when the cost does not depend on variables."""
        return self._static is not None

    def longest_list_argument(self, variables: Mapping[str, Any] | None = None) -> int:
        """The most items any list-typed slicing argument carries (0 when none does)."""
        longest = 0
        for value, path in self.list_arguments:
            if isinstance(value, ValueNode):
                value = _ast_value(value, variables, self._defaults)
            for step in path:
                value = value.get(step, _MISSING) if isinstance(value, Mapping) else _MISSING
            if isinstance(value, list | tuple) and len(value) > longest:
                longest = len(value)
        return longest

    def evaluate(self, variables: Mapping[str, Any] | None = None) -> CostEstimate:
        """Price one request: its variables (as sent; defaults come from the plan)."""
        if self._static is not None:
            cost, nodes = self._static
        else:
            cost, nodes = _guarded(self._eval_sel, self._root, variables, None, {})
        return CostEstimate(self, variables, cost, nodes)

    # ---- static cost

    def _size(self, f: _Field, variables: Mapping[str, Any] | None, ps: int | None) -> int:
        if f.size_from_parent and ps is not None:
            return ps
        if f.slicing:
            return _slicing_size(f, variables, self._defaults, self._max_page)
        return f.fixed_size

    def _eval_sel(
        self,
        sel: _Sel,
        variables: Mapping[str, Any] | None,
        ps: int | None,
        memo: dict[tuple[int, int | None], tuple[int, int]],
    ) -> tuple[int, int]:
        if sel.static:
            hit = sel.cache.get(ps)
            if hit is not None:
                return hit
        else:
            key = (id(sel), ps)
            hit = memo.get(key)
            if hit is not None:
                return hit
        cost = nodes = 0
        for f in sel.fields:
            if f.conds and _skipped(f.conds, variables, self._defaults):
                continue
            c, n = self._eval_field(f, variables, ps, memo)
            cost += c
            nodes += n
        for conds, part in sel.parts:
            if conds and _skipped(conds, variables, self._defaults):
                continue
            c, n = self._eval_sel(part, variables, ps, memo)
            cost += c
            nodes += n
        result = (cost, nodes)
        if sel.static:
            if len(sel.cache) < _STATIC_CACHE_MAX:
                sel.cache[ps] = result
        else:
            memo[(id(sel), ps)] = result
        return result

    def _eval_field(
        self,
        f: _Field,
        variables: Mapping[str, Any] | None,
        ps: int | None,
        memo: dict[tuple[int, int | None], tuple[int, int]],
    ) -> tuple[int, int]:
        size = self._size(f, variables, ps) if (f.is_list or f.parent_sized) else 1
        mult = size * f.extra_lists if f.is_list else 1
        leaf_weight = f.leaf_weight
        if leaf_weight is not None:
            cost = mult * leaf_weight
            nodes = 0
        else:
            child_ps = size if f.parent_sized else None
            best_cost = best_nodes = 0
            for weight, child in f.children:
                c, n = self._eval_sel(child, variables, child_ps, memo)
                if weight + c > best_cost:
                    best_cost = weight + c
                if n + 1 > best_nodes:
                    best_nodes = n + 1
            cost = mult * best_cost
            nodes = mult * best_nodes
        cost += f.surcharge + f.arg_const
        for arg_def, arg_weight, value_node in f.arg_dynamic:
            cost += self.model.argument_cost(
                arg_def.type, arg_weight, _ast_value(value_node, variables, self._defaults)
            )
        return (cost if cost > 0 else 0), nodes

    # ---- breakdown

    def breakdown(self, variables: Mapping[str, Any] | None = None) -> list[CostItem]:
        """Per-field cost items, fragments expanded, at most 5,000 lines."""
        items: list[CostItem] = []
        self._breakdown_sel(self._root, variables, None, "", 1, items)
        return items

    def _breakdown_sel(
        self,
        sel: _Sel,
        variables: Mapping[str, Any] | None,
        ps: int | None,
        prefix: str,
        instances: int,
        items: list[CostItem],
    ) -> None:
        for f in sel.fields:
            if len(items) >= _BREAKDOWN_MAX:
                return
            if f.conds and _skipped(f.conds, variables, self._defaults):
                continue
            cost, _ = self._eval_field(f, variables, ps, {})
            size = self._size(f, variables, ps) if (f.is_list or f.parent_sized) else 1
            mult = size * f.extra_lists if f.is_list else 1
            path = f"{prefix}.{f.key}" if prefix else f.key
            if f.leaf_weight is not None:
                items.append(CostItem(path, f.leaf_weight, instances * mult, instances * cost))
                continue
            # The most expensive concrete type is the one the estimate priced.
            best: tuple[int, _Sel] | None = None
            best_cost = -1
            child_ps = size if f.parent_sized else None
            for weight, child in f.children:
                c, _ = self._eval_sel(child, variables, child_ps, {})
                if weight + c > best_cost:
                    best_cost, best = weight + c, (weight, child)
            weight = best[0] if best else 0
            items.append(CostItem(path, weight, instances * mult, instances * cost))
            if best is not None:
                self._breakdown_sel(best[1], variables, child_ps, path, instances * mult, items)
        for conds, part in sel.parts:
            if conds and _skipped(conds, variables, self._defaults):
                continue
            self._breakdown_sel(part, variables, ps, prefix, instances, items)

    # ---- actual cost

    def actual(
        self, data: Mapping[str, Any] | None, variables: Mapping[str, Any] | None = None
    ) -> int:
        """Actual cost of a response's ``data`` (0 when nothing was returned)."""
        return self.actual_cost(data, variables).cost

    def actual_cost(
        self, data: Mapping[str, Any] | None, variables: Mapping[str, Any] | None = None
    ) -> ActualCost:
        """Actual cost, objects returned, and how many lists were longer than priced."""
        if not isinstance(data, Mapping):
            return ActualCost(0, 0, 0)
        counter = _Actual(self, variables)
        cost, nodes = counter.object(self.merged((self._root,)), data, None)
        return ActualCost(cost, nodes, counter.overflow)

    def merged(self, sels: tuple[_Sel, ...]) -> dict[str, _Merged]:
        key = tuple(id(s) for s in sels)
        found = self._merged.get(key)
        if found is None:
            found = _merge(sels)
            self._merged[key] = found
        return found


class _Merged:
    """All field nodes sharing one response key, as graphql-core merges them."""

    __slots__ = (
        "child_maps",
        "children",
        "dynamic",
        "extra",
        "extra_lists",
        "fields",
        "first",
        "is_list",
        "leaf_weight",
        "null_weight",
        "single",
        "sized",
        "typename_keys",
        "weights",
    )

    def __init__(self, fields: list[_Field]) -> None:
        first = fields[0]
        self.fields = fields
        self.first = first
        self.is_list = first.is_list
        self.sized = first.is_list or first.parent_sized
        self.extra_lists = first.extra_lists
        self.leaf_weight = first.leaf_weight
        self.extra = max(f.surcharge + f.arg_const for f in fields)
        self.dynamic = any(f.arg_dynamic for f in fields)
        self.weights: dict[str, int] = {}
        by_type: dict[str, list[_Sel]] = {}
        for f in fields:
            for type_name, (weight, child) in zip(f.type_names, f.children, strict=True):
                by_type.setdefault(type_name, []).append(child)
                self.weights[type_name] = max(self.weights.get(type_name, weight), weight)
        self.children = {name: tuple(sels) for name, sels in by_type.items()}
        # A lookup that found nothing was still work: a null object counts its cheapest type.
        self.null_weight = min(self.weights.values()) if self.weights else 0
        keys: set[str] = set()
        for sels in self.children.values():
            for sel in _flatten(sels):
                keys.update(sel.typename_keys)
        self.typename_keys = tuple(keys)
        self.single = next(iter(self.children)) if len(self.children) == 1 else None
        self.child_maps: dict[str, dict[str, _Merged]] = {}


def _flatten(sels: Iterable[_Sel]) -> list[_Sel]:
    out: list[_Sel] = []
    seen: set[int] = set()
    stack = list(sels)
    while stack:
        sel = stack.pop()
        if id(sel) in seen:
            continue
        seen.add(id(sel))
        out.append(sel)
        stack.extend(part for _, part in sel.parts)
    return out


def _merge(sels: tuple[_Sel, ...]) -> dict[str, _Merged]:
    groups: dict[str, list[_Field]] = {}
    for sel in _flatten(sels):
        for f in sel.fields:
            groups.setdefault(f.key, []).append(f)
    return {key: _Merged(fields) for key, fields in groups.items()}


class _Actual:
    """One walk of a response along the plan; list lengths capped at their priced size."""

    def __init__(self, plan: CostPlan, variables: Mapping[str, Any] | None) -> None:
        self.plan = plan
        self.variables = variables
        self.overflow = 0
        self.sizes: dict[tuple[int, int | None], int] = {}

    def size(self, f: _Field, ps: int | None) -> int:
        if f.size_from_parent and ps is not None:
            return ps
        if not f.slicing:
            return f.fixed_size
        key = (id(f), ps)
        found = self.sizes.get(key)
        if found is None:
            found = self.plan._size(f, self.variables, ps)
            self.sizes[key] = found
        return found

    def object(
        self, merged_map: dict[str, _Merged], obj: Mapping[str, Any], ps: int | None
    ) -> tuple[int, int]:
        cost = nodes = 0
        for key, merged in merged_map.items():
            value = obj.get(key, _MISSING)
            if value is _MISSING:
                continue
            here = self.dynamic_extra(merged) if merged.dynamic else merged.extra
            if value is not None:
                first = merged.first
                if not merged.sized:
                    size = 1
                elif first.slicing or (first.size_from_parent and ps is not None):
                    size = self.size(first, ps)
                else:
                    size = first.fixed_size
                leaf_weight = merged.leaf_weight
                if leaf_weight is not None:
                    here += self.count_leaves(merged, value, size) * leaf_weight
                else:
                    child_ps = size if first.parent_sized else None
                    if merged.is_list and isinstance(value, list):
                        if len(value) > size:
                            self.overflow += 1
                            value = value[:size]
                        single = merged.single
                        if single is not None:  # the common case, inlined for speed
                            child_map = merged.child_maps.get(single) or self.child_map(
                                merged, single
                            )
                            weight = merged.weights[single]
                            for item in value:
                                if type(item) is dict:
                                    c, n = self.object(child_map, item, child_ps)
                                    here += weight + c
                                    nodes += n + 1
                                    continue
                                if isinstance(item, list):
                                    c, n = self.nested(merged, item, child_ps)
                                elif item is None:
                                    c, n = merged.null_weight, 0
                                else:
                                    c, n = self.item(merged, item, child_ps)
                                here += c
                                nodes += n
                            if here > 0:
                                cost += here
                            continue
                        for item in value:
                            if isinstance(item, list):
                                c, n = self.nested(merged, item, child_ps)
                            else:
                                c, n = self.item(merged, item, child_ps)
                            here += c
                            nodes += n
                    else:
                        c, n = self.item(merged, value, child_ps)
                        here += c
                        nodes += n
            elif merged.leaf_weight is None:
                here += merged.null_weight
            if here > 0:
                cost += here
        return cost, nodes

    def nested(self, merged: _Merged, value: list[Any], child_ps: int | None) -> tuple[int, int]:
        # Inner levels of a nested list were priced at the default list size.
        limit = self.plan.model.default_list_size
        if len(value) > limit:
            self.overflow += 1
            value = value[:limit]
        cost = nodes = 0
        for item in value:
            if isinstance(item, list):
                c, n = self.nested(merged, item, child_ps)
            else:
                c, n = self.item(merged, item, child_ps)
            cost += c
            nodes += n
        return cost, nodes

    def dynamic_extra(self, merged: _Merged) -> int:
        plan = self.plan
        return max(
            f.surcharge
            + f.arg_const
            + sum(
                plan.model.argument_cost(a.type, w, _ast_value(v, self.variables, plan._defaults))
                for a, w, v in f.arg_dynamic
            )
            for f in merged.fields
        )

    def count_leaves(self, merged: _Merged, value: Any, size: int) -> int:
        if not merged.is_list or not isinstance(value, list):
            return 1
        count = sum(1 for v in _flat_items(value) if v is not None)
        bound = size * merged.extra_lists
        if count > bound:
            self.overflow += 1
            return bound
        return count

    def item(self, merged: _Merged, item: Any, child_ps: int | None) -> tuple[int, int]:
        if type(item) is not dict and not isinstance(item, Mapping):
            return (merged.null_weight if item is None else 0), 0
        single = merged.single
        if single is not None:
            c, n = self.object(self.child_map(merged, single), item, child_ps)
            return merged.weights[single] + c, n + 1
        type_name = None
        for key in merged.typename_keys:
            candidate = item.get(key)
            if isinstance(candidate, str) and candidate in merged.children:
                type_name = candidate
                break
        if type_name is not None:
            c, n = self.object(self.child_map(merged, type_name), item, child_ps)
            return merged.weights[type_name] + c, n + 1
        # Type unknown: the most expensive reading of the object is still within its price.
        best_cost = best_nodes = 0
        for name in merged.children:
            c, n = self.object(self.child_map(merged, name), item, child_ps)
            best_cost = max(best_cost, merged.weights[name] + c)
            best_nodes = max(best_nodes, n + 1)
        return best_cost, best_nodes

    def child_map(self, merged: _Merged, type_name: str) -> dict[str, _Merged]:
        found = merged.child_maps.get(type_name)
        if found is None:
            found = self.plan.merged(merged.children[type_name])
            merged.child_maps[type_name] = found
        return found


def _flat_items(value: list[Any]) -> Iterable[Any]:
    for item in value:
        if isinstance(item, list):
            yield from _flat_items(item)
        else:
            yield item


def check_estimate(
    estimate: CostEstimate, limits: Limits, measured: list[GuardError] | None = None
) -> None:
    """Refuse a list slicing argument longer than ``max_page_size`` (BAD_USER_INPUT, always:
    it asks for a page larger than any), then apply ``max_cost`` and ``max_nodes``: raise
    (enforce) or record (measure)."""
    longest = estimate.longest_list_argument()
    if longest > limits.max_page_size:
        raise GuardError(
            "BAD_USER_INPUT",
            f"A list argument has {longest} items, over the limit of {limits.max_page_size}.",
            observed=longest,
            limit=limits.max_page_size,
        )
    apply_limit(limits, "max_cost", estimate.requested, measured)
    apply_limit(limits, "max_nodes", estimate.nodes, measured)


def price_document(
    schema: GraphQLSchema | CostModel,
    text: str,
    variables: Mapping[str, Any] | None = None,
    operation_name: str | None = None,
    limits: Limits | None = None,
) -> dict[str, Any]:
    """Price a document without executing it: cost, nodes, breakdown and limit errors.

    Nothing raises: refusals (enforced limits, parse and validation errors) are listed in
    ``errors`` as GraphQL errors, would-be refusals of measured limits in ``measured``.
    """
    limits = limits or Limits()
    model = (
        schema
        if isinstance(schema, CostModel)
        else CostModel.from_schema(schema, max_page_size=limits.max_page_size)
    )
    result: dict[str, Any] = {
        "operationName": operation_name,
        "operationType": None,
        "cost": None,
        "nodes": None,
        "breakdown": [],
        "stats": None,
        "errors": [],
        "measured": [],
    }
    errors: list[dict[str, Any]] = result["errors"]
    measured: list[GuardError] = []
    try:
        document, stats = check_document(text, operation_name, limits)
    except GuardError as error:
        errors.append(error.to_graphql())
        return result
    measured.extend(stats.measured)
    result["stats"] = {k: v for k, v in asdict(stats).items() if k != "measured"}
    result["operationName"] = stats.operation_name
    result["operationType"] = stats.operation_type
    validation = validate(model.schema, document)
    if validation:
        errors.extend(
            {
                "message": e.message,
                "locations": [
                    {"line": loc.line, "column": loc.column} for loc in e.locations or ()
                ],
                "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"},
            }
            for e in validation
        )
        result["measured"] = [m.to_graphql() for m in measured]
        return result
    try:
        plan = model.compile(document, operation_name)
        estimate = plan.evaluate(variables)
    except GuardError as error:
        errors.append(error.to_graphql())
        result["measured"] = [m.to_graphql() for m in measured]
        return result
    result["cost"] = estimate.requested
    result["nodes"] = estimate.nodes
    result["breakdown"] = [asdict(item) for item in estimate.breakdown()]
    try:
        check_estimate(estimate, limits, measured)
    except GuardError as error:
        errors.append(error.to_graphql())
    result["measured"] = [m.to_graphql() for m in measured]
    return result
