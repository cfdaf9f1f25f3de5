"""A batched executor for the read operations it has bindings for; graphql-core runs the rest.

graphql-core's executor is generic: for every field of every object it builds a ResolveInfo,
calls a resolver through Strawberry's wrappers, checks for awaitables and completes the value
on its own, so a page of 20 orders (about 900 response fields) spends most of its time in
that per-field machinery rather than in the database. This executor runs the same validated
document breadth-first instead: each field of a selection is resolved once for *all* the
objects at its level (one loader call for the 20 customers of 20 orders, one attribute read
per scalar), then the response dictionaries are assembled in selection order.

It takes a document only when every field it selects has a binding (``schema.bindings``) and
its types are concrete, single-level lists at most; mutations, subscriptions, introspection,
abstract types and any unbound field go to graphql-core (:meth:`FastExecutor.plan` returns
``None``). Semantics follow the GraphQL spec as graphql-core implements it: field collection
with fragments and ``@skip``/``@include``, argument defaults, leaf serialization by the schema's
own scalars and enums, null propagation to the nearest nullable parent, and errors located
with the field's nodes and path (``tests/server/test_executor.py`` compares both executors'
responses over the contract's operations and a corpus of edge cases).

Plans are cached on the prepared document; a document with ``@skip``/``@include`` is planned
per request, since its shape depends on the variables.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from math import isfinite
from typing import Any

from graphql import (
    BREAK,
    DirectiveNode,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLBoolean,
    GraphQLEnumType,
    GraphQLError,
    GraphQLField,
    GraphQLFloat,
    GraphQLID,
    GraphQLInt,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLString,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    Undefined,
    VariableNode,
    Visitor,
    located_error,
    value_from_ast,
    visit,
)

# -- bindings: how the fields of a type are read -------------------------------------------------


@dataclass(frozen=True, slots=True)
class Leaf:
    """A scalar or enum read from the source, serialized by the schema's type.

    ``guard(context, source)`` (optional) denies the field: null with a FORBIDDEN error.
    """

    read: Callable[[Any], Any]
    guard: Callable[[Any, Any], bool] | None = None


@dataclass(frozen=True, slots=True)
class Child:
    """An object (or a list of objects) derived from the source without I/O; ``guard`` as
    for :class:`Leaf`."""

    read: Callable[[Any], Any]
    guard: Callable[[Any, Any], bool] | None = None


@dataclass(frozen=True, slots=True)
class Batch:
    """Values for all sources of a level at once: ``await load(context, sources, args)``.

    Returns one value per source, in order; an item that is an exception is that source's
    field error. A raised exception is the error of every source. ``guard`` as for
    :class:`Leaf`: the sources it denies get a FORBIDDEN error and are not passed to ``load``.
    """

    load: Callable[[Any, Sequence[Any], dict[str, Any]], Awaitable[Sequence[Any]]]
    guard: Callable[[Any, Any], bool] | None = None


Binding = Leaf | Child | Batch
Bindings = dict[str, dict[str, Binding]]

FORBIDDEN_MESSAGE = "You are not allowed to read this field."

_TYPENAME, _LEAF, _CHILD, _BATCH = range(4)


class _Invalid:
    """A value nulled by an error: its parent takes the null, or turns null itself."""

    __slots__ = ()


INVALID: Any = _Invalid()
_FAILED: Any = _Invalid()  # a list field whose value was not iterable (error recorded)


class Unsupported(Exception):
    """The document needs something this executor does not do; graphql-core runs it."""


class _Forbidden(GraphQLError):
    def __init__(self) -> None:
        super().__init__(FORBIDDEN_MESSAGE, extensions={"code": "FORBIDDEN"})


# -- plans ---------------------------------------------------------------------------------------


class FieldPlan:
    __slots__ = (
        "child",
        "definition",
        "exact",
        "guard",
        "is_list",
        "item_non_null",
        "key",
        "kind",
        "load",
        "name",
        "nodes",
        "non_null",
        "parent_name",
        "read",
        "serialize",
    )

    def __init__(self, key: str, name: str, nodes: list[FieldNode], parent_name: str) -> None:
        self.key = key
        self.name = name
        self.nodes = nodes
        self.parent_name = parent_name
        self.kind = _TYPENAME
        self.read: Callable[[Any], Any] | None = None
        self.guard: Callable[[Any, Any], bool] | None = None
        self.load: Any = None
        self.serialize: Callable[[Any], Any] | None = None
        self.non_null = True
        self.is_list = False
        self.item_non_null = False
        self.child: ObjectPlan | None = None
        self.definition: GraphQLField | None = None
        self.exact: Any = None  # the named output type of a leaf


def _never_waits(field: FieldPlan) -> bool:
    child = field.child
    return field.kind != _BATCH and (child is None or child.sync)


class ObjectPlan:
    __slots__ = ("assemble", "deferred", "fields", "inline", "sync", "type_name")
    sync: bool

    def __init__(self, type_name: str, fields: list[FieldPlan]) -> None:
        self.type_name = type_name
        self.fields = fields
        # No batch anywhere below: completing this plan never waits for I/O.
        self.sync = all(f.kind != _BATCH and (f.child is None or f.child.sync) for f in fields)
        # Fields that need a level of their own (objects, batches), resolved before assembly:
        # those that never wait are completed in line, the others concurrently.
        deferred = [f for f in fields if f.kind in (_CHILD, _BATCH)]
        self.inline = [
            f for f in deferred if f.kind == _CHILD and f.child is not None and f.child.sync
        ]
        self.deferred = [f for f in deferred if f not in self.inline]
        self.assemble = _assembler(self)


class _Slow(Exception):
    """This object needs the general path (an error, a null, a denial): it reruns there."""


_Assemble = Callable[
    [Sequence[Any], dict[int, list[Any]], Any, Callable[[int, Any], Any]], list[Any]
]


def _assembler(plan: ObjectPlan) -> _Assemble:
    """A function made for one plan that builds each source's dict in one literal.

    It takes the common case only: every guard allows, every leaf reads and serializes
    without error, no non-null leaf is null, no deferred value is invalid. Anything else
    raises inside its ``try`` and that source's object is built again by ``slow`` (the
    general path of :meth:`_Run.objects`, which records the errors in order); reads,
    guards and serializers have no side effects, so running them twice changes nothing.
    The generated text holds only indexes; every name it uses is in its namespace.
    """
    namespace: dict[str, Any] = {"INVALID": INVALID, "Slow": _Slow, "enumerate": enumerate}
    head: list[str] = []
    body: list[str] = []
    items: list[str] = []
    for i, field in enumerate(plan.fields):
        namespace[f"k{i}"] = field.key
        if field.kind == _TYPENAME:
            namespace[f"t{i}"] = plan.type_name
            items.append(f"k{i}: t{i}")
            continue
        if field.kind == _LEAF:
            namespace[f"r{i}"], namespace[f"s{i}"] = field.read, field.serialize
            if field.guard is not None:
                namespace[f"g{i}"] = field.guard
                body.append(f"if not g{i}(context, source): raise Slow")
            body.append(f"v{i} = r{i}(source)")
            exact = _EXACT.get(field.exact)
            if exact is str or exact is bool:  # no call where the value is of the type
                namespace[f"x{i}"] = exact
                convert = [f"if v{i}.__class__ is not x{i}:", f"    v{i} = s{i}(v{i})"]
                check = [f"    if v{i} is None: raise Slow"]
            else:
                convert, check = [f"v{i} = s{i}(v{i})"], [f"if v{i} is None: raise Slow"]
            if field.non_null:  # a null, read or serialized, is the general path's error
                body += [f"if v{i} is None: raise Slow", *convert, *check]
            else:
                body += [f"if v{i} is not None:", *(f"    {line}" for line in convert)]
        else:
            namespace[f"i{i}"] = id(field)
            head.append(f"    d{i} = deferred[i{i}]")
            body.append(f"v{i} = d{i}[index]")
            body.append(f"if v{i} is INVALID: raise Slow")
        items.append(f"k{i}: v{i}")
    lines = [
        "def assemble(sources, deferred, context, slow):",
        *head,
        "    out = []",
        "    append = out.append",
        "    for index, source in enumerate(sources):",
        "        try:",
        *(f"            {line}" for line in body),
        f"            append({{{', '.join(items)}}})",
        "        except Exception:",
        "            append(slow(index, source))",
        "    return out",
    ]
    exec("\n".join(lines), namespace)  # noqa: S102 (indexes only; names from the namespace)
    return namespace["assemble"]  # type: ignore[no-any-return]


@dataclass(slots=True)
class OperationPlan:
    root: ObjectPlan


_INT_BOUND = 2**31
_EXACT: dict[Any, type] = {
    GraphQLString: str,
    GraphQLID: str,
    GraphQLInt: int,
    GraphQLBoolean: bool,
    GraphQLFloat: float,
}


def _fast_serializer(named: Any) -> Callable[[Any], Any]:
    """The type's own serialize, skipped where the answer is known without it: a built-in
    scalar's value already of its output type, an enum's stored value (its name)."""
    serialize = named.serialize
    if isinstance(named, GraphQLEnumType):
        names: dict[Any, str] = {}
        for name, value in named.values.items():
            with contextlib.suppress(TypeError):  # unhashable values: serialize decides
                names[value.value] = name

        def enum(value: Any) -> Any:
            try:
                found = names.get(value)
            except TypeError:
                found = None
            return serialize(value) if found is None else found

        return enum
    exact = _EXACT.get(named)
    if exact is None:
        return serialize  # type: ignore[no-any-return]
    if exact is int:  # GraphQL's Int is 32-bit: anything wider is the scalar's error

        def int_(value: Any) -> Any:
            if value.__class__ is int and -_INT_BOUND <= value < _INT_BOUND:
                return value
            return serialize(value)

        return int_
    if exact is float:  # and Float is finite

        def float_(value: Any) -> Any:
            return value if value.__class__ is float and isfinite(value) else serialize(value)

        return float_

    def fast(value: Any) -> Any:
        return value if value.__class__ is exact else serialize(value)

    return fast


class _Compiler:
    def __init__(
        self,
        schema: GraphQLSchema,
        bindings: Bindings,
        fragments: dict[str, FragmentDefinitionNode],
        variables: dict[str, Any],
    ) -> None:
        self.schema = schema
        self.bindings = bindings
        self.fragments = fragments
        self.variables = variables

    def _included(self, node: Any) -> bool:
        for directive in node.directives or ():
            name = directive.name.value
            if name not in ("skip", "include"):
                raise Unsupported(f"directive @{name}")
            condition = next((a.value for a in directive.arguments if a.name.value == "if"), None)
            value = value_from_ast(condition, GraphQLNonNull(GraphQLBoolean), self.variables)
            if value is Undefined:
                raise Unsupported("unresolvable @skip/@include")
            if (name == "skip") == bool(value):
                return False
        return True

    def _matches(self, condition: Any, runtime: GraphQLObjectType) -> bool:
        if condition is None:
            return True
        condition_type = self.schema.get_type(condition.name.value)
        if condition_type is runtime:
            return True
        return condition_type is not None and self.schema.is_sub_type(condition_type, runtime)  # type: ignore[arg-type]

    def _collect(
        self,
        runtime: GraphQLObjectType,
        selection_set: SelectionSetNode,
        fields: dict[str, list[FieldNode]],
        visited: set[str],
    ) -> None:
        for selection in selection_set.selections:
            if not self._included(selection):
                continue
            if isinstance(selection, FieldNode):
                key = selection.alias.value if selection.alias else selection.name.value
                fields.setdefault(key, []).append(selection)
            elif isinstance(selection, InlineFragmentNode):
                if self._matches(selection.type_condition, runtime):
                    self._collect(runtime, selection.selection_set, fields, visited)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                if name in visited:
                    continue
                visited.add(name)
                fragment = self.fragments.get(name)
                if fragment is None:
                    raise Unsupported(f"fragment {name}")
                if self._matches(fragment.type_condition, runtime):
                    self._collect(runtime, fragment.selection_set, fields, visited)
            else:  # pragma: no cover - the spec has no other selection
                raise Unsupported(type(selection).__name__)

    def object_plan(
        self, runtime: GraphQLObjectType, selection_sets: list[SelectionSetNode]
    ) -> ObjectPlan:
        grouped: dict[str, list[FieldNode]] = {}
        visited: set[str] = set()
        for selection_set in selection_sets:
            self._collect(runtime, selection_set, grouped, visited)
        type_bindings = self.bindings.get(runtime.name, {})
        fields: list[FieldPlan] = []
        for key, nodes in grouped.items():
            name = nodes[0].name.value
            plan = FieldPlan(key, name, nodes, runtime.name)
            if name == "__typename":
                fields.append(plan)
                continue
            binding = type_bindings.get(name)
            definition = runtime.fields.get(name)
            if binding is None or definition is None:
                raise Unsupported(f"{runtime.name}.{name} has no binding")
            plan.definition = definition
            if _has_permission(definition) and getattr(binding, "guard", None) is None:
                # A permission on the type alone must never leak here: graphql-core runs it.
                raise Unsupported(f"{runtime.name}.{name} has a permission but no guard")
            output = definition.type
            plan.non_null = isinstance(output, GraphQLNonNull)
            if plan.non_null:
                output = output.of_type  # type: ignore[attr-defined]
            if isinstance(output, GraphQLList):
                plan.is_list = True
                output = output.of_type
                plan.item_non_null = isinstance(output, GraphQLNonNull)
                if plan.item_non_null:
                    output = output.of_type  # type: ignore[attr-defined]
                if isinstance(output, GraphQLList):
                    raise Unsupported("nested lists")
            if isinstance(output, GraphQLScalarType | GraphQLEnumType):
                plan.serialize = _fast_serializer(output)
                plan.exact = output
                if isinstance(binding, Leaf):
                    plan.kind, plan.read, plan.guard = _LEAF, binding.read, binding.guard
                    if plan.is_list:
                        raise Unsupported("list of leaves")
                elif isinstance(binding, Batch):
                    plan.kind, plan.load, plan.guard = _BATCH, binding.load, binding.guard
                    if plan.is_list:
                        raise Unsupported("list of leaves")
                else:
                    raise Unsupported(f"{runtime.name}.{name}: leaf bound as an object")
            elif isinstance(output, GraphQLObjectType):
                if isinstance(binding, Child):
                    plan.kind, plan.read, plan.guard = _CHILD, binding.read, binding.guard
                elif isinstance(binding, Batch):
                    plan.kind, plan.load, plan.guard = _BATCH, binding.load, binding.guard
                else:
                    raise Unsupported(f"{runtime.name}.{name}: object bound as a leaf")
                plan.child = self.object_plan(
                    output, [n.selection_set for n in nodes if n.selection_set is not None]
                )
            else:
                raise Unsupported(f"{runtime.name}.{name}: abstract type {output}")
            fields.append(plan)
        return ObjectPlan(runtime.name, fields)


def _has_permission(definition: GraphQLField) -> bool:
    """Whether Strawberry puts permission classes on this field."""
    strawberry_field = (definition.extensions or {}).get("strawberry-definition")
    return bool(getattr(strawberry_field, "permission_classes", None))


class _DirectiveFinder(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.found = False

    def enter_directive(self, node: DirectiveNode, *_: Any) -> Any:
        self.found = True
        return BREAK


def _has_directives(document: DocumentNode) -> bool:
    finder = _DirectiveFinder()
    visit(document, finder)
    return finder.found


# -- execution -----------------------------------------------------------------------------------


class _Run:
    __slots__ = ("context", "errors", "variables")

    def __init__(self, context: Any, variables: dict[str, Any]) -> None:
        self.context = context
        self.variables = variables
        self.errors: list[GraphQLError] = []

    def fail(
        self, error: BaseException, field: FieldPlan, path: tuple[Any, ...], *item: int
    ) -> None:
        located = located_error(error, field.nodes, [*path, field.key, *item])  # type: ignore[arg-type]
        self.errors.append(located)

    def null_error(self, field: FieldPlan, path: tuple[Any, ...], *item: int) -> None:
        message = f"Cannot return null for non-nullable field {field.parent_name}.{field.name}."
        self.fail(TypeError(message), field, path, *item)

    def arguments(self, field: FieldPlan) -> dict[str, Any]:
        definition = field.definition
        if definition is None or not definition.args:
            return {}
        given = {a.name.value: a.value for a in field.nodes[0].arguments or ()}
        values: dict[str, Any] = {}
        for name, argument in definition.args.items():
            node = given.get(name)
            if node is None or (
                isinstance(node, VariableNode) and node.name.value not in self.variables
            ):
                if argument.default_value is not Undefined:
                    values[name] = argument.default_value
                continue
            value = value_from_ast(node, argument.type, self.variables)
            if value is Undefined:  # validated documents and coerced variables never get here
                raise Unsupported(f"argument {name}")
            values[name] = value
        return values

    async def objects(
        self, plan: ObjectPlan, sources: Sequence[Any], paths: Sequence[tuple[Any, ...]]
    ) -> list[Any]:
        """Complete ``plan`` for every source: a dict each, or INVALID where a null bubbled."""
        deferred: dict[int, list[Any]] = {}
        for field in plan.inline:  # awaited directly: they never suspend, so no task is made
            deferred[id(field)] = await self.complete(field, sources, paths)
        if plan.deferred:
            jobs = [self.complete(field, sources, paths) for field in plan.deferred]
            done = await asyncio.gather(*jobs) if len(jobs) > 1 else [await jobs[0]]
            deferred.update((id(f), values) for f, values in zip(plan.deferred, done, strict=True))
        return plan.assemble(
            sources,
            deferred,
            self.context,
            lambda index, source: self._object(plan, source, paths[index], index, deferred),
        )

    def _object(
        self,
        plan: ObjectPlan,
        source: Any,
        path: tuple[Any, ...],
        index: int,
        deferred: dict[int, list[Any]],
    ) -> Any:
        """One source's object on the general path: its dict, or INVALID where a null
        bubbled; every error recorded in field order."""
        context = self.context
        result: Any = {}
        nulled = False
        for field in plan.fields:
            kind = field.kind
            if kind == _LEAF:
                try:
                    if field.guard is not None and not field.guard(context, source):
                        raise _Forbidden()
                    value = field.read(source)  # type: ignore[misc]
                    if value is not None:
                        value = field.serialize(value)  # type: ignore[misc]
                except Exception as error:
                    self.fail(error, field, path)
                    value = INVALID
                else:
                    if value is None and field.non_null:
                        self.null_error(field, path)
                        value = INVALID
            elif kind == _TYPENAME:
                value = plan.type_name
            else:
                value = deferred[id(field)][index]
            if value is INVALID:
                if field.non_null:
                    # The object turns null. graphql-core stops at a field that failed
                    # synchronously but has run the fields after one that awaited (their
                    # errors reported): a batch stands for the awaiting kind.
                    nulled = True
                    if kind != _BATCH:
                        break
                    continue
                value = None
            result[field.key] = value
        return INVALID if nulled else result

    async def complete(
        self, field: FieldPlan, sources: Sequence[Any], paths: Sequence[tuple[Any, ...]]
    ) -> list[Any]:
        """The completed value of ``field`` for every source (INVALID where it failed)."""
        count = len(sources)
        values: list[Any]
        if field.kind == _CHILD:
            read, guard, context = field.read, field.guard, self.context
            values = []
            for source in sources:
                try:
                    if guard is not None and not guard(context, source):
                        raise _Forbidden()
                    values.append(read(source))  # type: ignore[misc]
                except Exception as error:
                    values.append(error)
        elif field.guard is None:
            try:
                values = list(await field.load(self.context, sources, self.arguments(field)))
                if len(values) != count:
                    raise RuntimeError(
                        f"{field.parent_name}.{field.name}: {len(values)} values for {count} objects"
                    )
            except Exception as error:  # every source fails with it
                values = [error] * count
        else:
            values = await self._guarded_load(field, sources)
        key = field.key
        completed: list[Any] = [None] * count
        child = field.child
        if child is None:  # a batched leaf
            serialize = field.serialize
            for index, value in enumerate(values):
                if isinstance(value, Exception):
                    self.fail(value, field, paths[index])
                    completed[index] = INVALID
                elif value is None:
                    if field.non_null:
                        self.null_error(field, paths[index])
                        completed[index] = INVALID
                else:
                    try:
                        completed[index] = serialize(value)  # type: ignore[misc]
                    except Exception as error:
                        self.fail(error, field, paths[index])
                        completed[index] = INVALID
            return completed
        child_sources: list[Any] = []
        child_paths: list[tuple[Any, ...]] = []
        for index, value in enumerate(values):
            path = paths[index]
            if isinstance(value, Exception):
                self.fail(value, field, path)
                completed[index] = INVALID
            elif value is None:
                if field.non_null:
                    self.null_error(field, path)
                    completed[index] = INVALID
            elif field.is_list:
                if not isinstance(value, list):
                    try:
                        value = values[index] = list(value)  # iterated twice below
                    except TypeError:
                        self.fail(
                            TypeError(
                                "Expected Iterable, but did not find one for field"
                                f" '{field.parent_name}.{field.name}'."
                            ),
                            field,
                            path,
                        )
                        values[index] = value = _FAILED
                        completed[index] = INVALID
                        continue
                base = (*path, key)
                for position, item in enumerate(value):
                    if item is not None:
                        child_sources.append(item)
                        child_paths.append((*base, position))
            else:
                child_sources.append(value)
                child_paths.append((*path, key))
        objects = await self.objects(child, child_sources, child_paths) if child_sources else []
        taken = 0
        for index, value in enumerate(values):
            if value is None or value is _FAILED or isinstance(value, Exception):
                continue
            if not field.is_list:
                completed[index] = objects[taken]
                taken += 1
                continue
            items: Any = []
            for position, item in enumerate(value):
                if item is None:
                    if field.item_non_null:
                        self.null_error(field, paths[index], position)
                        items = INVALID
                        continue
                    if items is not INVALID:
                        items.append(None)
                    continue
                done = objects[taken]
                taken += 1
                if items is INVALID:
                    continue
                if done is INVALID:
                    if field.item_non_null:
                        items = INVALID
                        continue
                    done = None
                items.append(done)
            completed[index] = items
        return completed

    async def _guarded_load(self, field: FieldPlan, sources: Sequence[Any]) -> list[Any]:
        """A batch behind a guard: denied sources get FORBIDDEN, the others one load."""
        guard, context = field.guard, self.context
        values: list[Any] = [None] * len(sources)
        allowed: list[int] = []
        for index, source in enumerate(sources):
            try:
                if guard(context, source):  # type: ignore[misc]
                    allowed.append(index)
                else:
                    values[index] = _Forbidden()
            except Exception as error:
                values[index] = error
        if not allowed:
            return values
        try:
            loaded = list(
                await field.load(context, [sources[i] for i in allowed], self.arguments(field))
            )
            if len(loaded) != len(allowed):
                raise RuntimeError(
                    f"{field.parent_name}.{field.name}: {len(loaded)} values for "
                    f"{len(allowed)} objects"
                )
        except Exception as error:  # every allowed source fails with it
            loaded = [error] * len(allowed)
        for index, value in zip(allowed, loaded, strict=True):
            values[index] = value
        return values


class FastExecutor:
    """Plans and runs the operations the bindings cover; ``plan`` is None for the rest."""

    def __init__(self, schema: GraphQLSchema, bindings: Bindings) -> None:
        self.schema = schema
        self.bindings = bindings

    def plan(
        self,
        document: DocumentNode,
        operation: OperationDefinitionNode,
        variables: dict[str, Any],
    ) -> OperationPlan | None:
        if operation.operation is not OperationType.QUERY:
            return None
        root = self.schema.query_type
        if root is None:
            return None
        fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        try:
            compiler = _Compiler(self.schema, self.bindings, fragments, variables)
            return OperationPlan(compiler.object_plan(root, [operation.selection_set]))
        except Unsupported:
            return None

    @staticmethod
    def conditional(document: DocumentNode) -> bool:
        """Whether the document's plan depends on variables (it carries directives)."""
        return _has_directives(document)

    @staticmethod
    async def run(
        plan: OperationPlan, context: Any, variables: dict[str, Any], root: Any = None
    ) -> tuple[dict[str, Any] | None, list[GraphQLError]]:
        run = _Run(context, variables)
        (data,) = await run.objects(plan.root, [root], [()])
        return (None if data is INVALID else data), run.errors
