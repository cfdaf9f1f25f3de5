"""Schema change check: classify the changes between two SDLs as breaking, dangerous or safe.

graphql-core finds the breaking and dangerous changes; this module adds the safe ones (added
types, fields, nullable arguments, directives, deprecations, safe type changes) and the changes
to applied directives that graphql-core does not compare (``@cost``/``@listSize`` weights change
what operations cost, so they are dangerous).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from graphql import (
    DirectiveNode,
    GraphQLArgument,
    GraphQLEnumType,
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLType,
    build_schema,
    find_breaking_changes,
    find_dangerous_changes,
    is_list_type,
    is_named_type,
    is_non_null_type,
    is_required_argument,
    is_specified_directive,
    print_ast,
)
from graphql.execution.values import get_argument_values


class Level(StrEnum):
    """How a change affects existing clients."""

    BREAKING = "breaking"
    DANGEROUS = "dangerous"
    SAFE = "safe"


@dataclass(frozen=True, slots=True)
class Change:
    """One classified schema change (``kind`` names it, e.g. FIELD_REMOVED)."""

    level: Level
    kind: str
    description: str

    def to_dict(self) -> dict[str, str]:
        return {"type": self.kind, "description": self.description}


@dataclass(slots=True)
class Report:
    """Every change from an old schema to a new one, by level."""

    changes: list[Change] = field(default_factory=list)

    def of(self, level: Level) -> list[Change]:
        """The changes of one level, in the order found."""
        return [change for change in self.changes if change.level is level]

    @property
    def breaking(self) -> bool:
        return any(change.level is Level.BREAKING for change in self.changes)

    @property
    def exit_code(self) -> int:
        """1 when anything is breaking, else 0 (dangerous changes are reported, not fatal)."""
        return 1 if self.breaking else 0

    def to_dict(self, old: str = "old", new: str = "new") -> dict[str, Any]:
        """A JSON-ready form: the changes by level and a summary."""
        return {
            "old": old,
            "new": new,
            "summary": {level.value: len(self.of(level)) for level in Level},
            **{level.value: [c.to_dict() for c in self.of(level)] for level in Level},
        }

    def render(self, old: str = "old", new: str = "new") -> str:
        """A readable report, breaking changes first."""
        counts = ", ".join(f"{len(self.of(level))} {level.value}" for level in Level)
        lines = [f"Schema check: {old} -> {new}", counts]
        for level in Level:
            found = self.of(level)
            if not found:
                continue
            lines += ["", f"{level.value.upper()} ({len(found)})"]
            width = max(len(change.kind) for change in found)
            lines += [f"  {c.kind.ljust(width)}  {c.description}" for c in found]
        if self.breaking:
            lines += ["", "Result: BREAKING changes found (exit 1)."]
        elif self.of(Level.DANGEROUS):
            lines += ["", "Result: no breaking change; review the dangerous ones (exit 0)."]
        else:
            lines += ["", "Result: no breaking or dangerous change (exit 0)."]
        return "\n".join(lines)


def compare_sdl(old_sdl: str, new_sdl: str) -> Report:
    """Compare two SDL texts (raises GraphQLError when either is not a valid schema)."""
    return compare(build_schema(old_sdl), build_schema(new_sdl))


def served_sdl() -> str:
    """The SDL the server serves (printed from the Strawberry schema)."""
    from schema import build_schema as build_served

    return build_served().as_str()


def compare(old: GraphQLSchema, new: GraphQLSchema) -> Report:
    """Classify every change from ``old`` to ``new``."""
    report = Report()
    for breaking in find_breaking_changes(old, new):
        report.changes.append(Change(Level.BREAKING, breaking.type.name, breaking.description))
    for dangerous in find_dangerous_changes(old, new):
        # Re-derived below: an added nullable argument is safe, not dangerous.
        if dangerous.type.name == "OPTIONAL_ARG_ADDED":
            continue
        report.changes.append(Change(Level.DANGEROUS, dangerous.type.name, dangerous.description))
    report.changes += _added_arguments(old, new)
    report.changes += _applied_directive_changes(old, new)
    report.changes += _safe_changes(old, new)
    order = {Level.BREAKING: 0, Level.DANGEROUS: 1, Level.SAFE: 2}
    report.changes.sort(key=lambda change: order[change.level])
    return report


def _user_types(schema: GraphQLSchema) -> dict[str, Any]:
    return {name: t for name, t in schema.type_map.items() if not name.startswith("__")}


def _fielded(named: Any) -> bool:
    return isinstance(named, GraphQLObjectType | GraphQLInterfaceType)


def _persisted_fields(
    old: GraphQLSchema, new: GraphQLSchema
) -> Iterator[tuple[str, str, GraphQLField, GraphQLField]]:
    """(type name, field name, old field, new field) for output fields present in both."""
    new_types = _user_types(new)
    for name, old_type in _user_types(old).items():
        new_type: Any = new_types.get(name)
        if not (_fielded(old_type) and type(new_type) is type(old_type)):
            continue
        for field_name, old_field in old_type.fields.items():
            if field_name in new_type.fields:
                yield name, field_name, old_field, new_type.fields[field_name]


def _added_arguments(old: GraphQLSchema, new: GraphQLSchema) -> list[Change]:
    changes = []
    for type_name, field_name, old_field, new_field in _persisted_fields(old, new):
        for arg_name, arg in new_field.args.items():
            if arg_name in old_field.args or is_required_argument(arg):
                continue  # required ones are graphql-core's REQUIRED_ARG_ADDED (breaking)
            where = f"{type_name}.{field_name}({arg_name}:)"
            if is_non_null_type(arg.type):
                # A non-null argument with a default: an explicit null now fails.
                changes.append(
                    Change(
                        Level.DANGEROUS,
                        "OPTIONAL_ARG_ADDED",
                        f"An optional non-null argument {where} with a default was added.",
                    )
                )
            else:
                changes.append(
                    Change(
                        Level.SAFE,
                        "OPTIONAL_ARG_ADDED",
                        f"An optional argument {where} of type {arg.type} was added.",
                    )
                )
    return changes


def _safe_changes(old: GraphQLSchema, new: GraphQLSchema) -> list[Change]:
    changes: list[Change] = []
    old_types, new_types = _user_types(old), _user_types(new)
    for name, named in new_types.items():
        if name not in old_types:
            kind = type(named).__name__.removeprefix("GraphQL").removesuffix("Type")
            changes.append(Change(Level.SAFE, "TYPE_ADDED", f"{kind} {name} was added."))
    old_directives = {d.name for d in old.directives}
    for directive in new.directives:
        if directive.name not in old_directives:
            changes.append(
                Change(Level.SAFE, "DIRECTIVE_ADDED", f"Directive @{directive.name} was added.")
            )
    for name, old_type in old_types.items():
        new_type: Any = new_types.get(name)
        if type(new_type) is not type(old_type):
            continue
        if _fielded(old_type):
            for field_name in new_type.fields:
                if field_name not in old_type.fields:
                    changes.append(
                        Change(
                            Level.SAFE,
                            "FIELD_ADDED",
                            f"Field {name}.{field_name}: {new_type.fields[field_name].type} "
                            "was added.",
                        )
                    )
        if isinstance(old_type, GraphQLEnumType):
            for value_name, value in old_type.values.items():
                new_value = new_type.values.get(value_name)
                if new_value is not None:
                    changes += _deprecation(
                        f"{name}.{value_name}",
                        "ENUM_VALUE",
                        value.deprecation_reason,
                        new_value.deprecation_reason,
                    )
    for type_name, field_name, old_field, new_field in _persisted_fields(old, new):
        where = f"{type_name}.{field_name}"
        if str(old_field.type) != str(new_field.type) and _safe_output_change(
            old_field.type, new_field.type
        ):
            changes.append(
                Change(
                    Level.SAFE,
                    "FIELD_CHANGED_KIND_SAFE",
                    f"Field {where} changed type from {old_field.type} to {new_field.type}.",
                )
            )
        changes += _deprecation(
            where, "FIELD", old_field.deprecation_reason, new_field.deprecation_reason
        )
        for arg_name, old_arg in old_field.args.items():
            new_arg = new_field.args.get(arg_name)
            if new_arg is None:
                continue
            if str(old_arg.type) != str(new_arg.type) and _safe_input_change(
                old_arg.type, new_arg.type
            ):
                changes.append(
                    Change(
                        Level.SAFE,
                        "ARG_CHANGED_KIND_SAFE",
                        f"Argument {where}({arg_name}:) changed type from {old_arg.type} "
                        f"to {new_arg.type}.",
                    )
                )
            changes += _deprecation(
                f"{where}({arg_name}:)",
                "ARG",
                old_arg.deprecation_reason,
                new_arg.deprecation_reason,
            )
    return changes


def _deprecation(where: str, what: str, old: str | None, new: str | None) -> list[Change]:
    if old is None and new is not None:
        return [Change(Level.SAFE, f"{what}_DEPRECATED", f"{where} was deprecated: {new}")]
    if old is not None and new is None:
        return [Change(Level.SAFE, f"{what}_UNDEPRECATED", f"{where} is no longer deprecated.")]
    return []


def _safe_output_change(old: GraphQLType, new: GraphQLType) -> bool:
    """Whether a field's result type may change from ``old`` to ``new`` (spec rules)."""
    if is_list_type(old):
        return (is_list_type(new) and _safe_output_change(old.of_type, new.of_type)) or (  # type: ignore[attr-defined]
            is_non_null_type(new) and _safe_output_change(old, new.of_type)  # type: ignore[attr-defined]
        )
    if is_non_null_type(old):
        return is_non_null_type(new) and _safe_output_change(old.of_type, new.of_type)  # type: ignore[attr-defined]
    if is_named_type(old):
        return (is_named_type(new) and old.name == new.name) or (  # type: ignore[attr-defined]
            is_non_null_type(new) and _safe_output_change(old, new.of_type)  # type: ignore[attr-defined]
        )
    return False


def _safe_input_change(old: GraphQLType, new: GraphQLType) -> bool:
    """Whether an argument's type may change from ``old`` to ``new`` (spec rules)."""
    if is_list_type(old):
        return is_list_type(new) and _safe_input_change(old.of_type, new.of_type)  # type: ignore[attr-defined]
    if is_non_null_type(old):
        return (is_non_null_type(new) and _safe_input_change(old.of_type, new.of_type)) or (  # type: ignore[attr-defined]
            not is_non_null_type(new) and _safe_input_change(old.of_type, new)  # type: ignore[attr-defined]
        )
    return is_named_type(old) and is_named_type(new) and old.name == new.name  # type: ignore[attr-defined]


def _applied(schema: GraphQLSchema, nodes: Iterable[Any]) -> dict[str, str]:
    """Applied directives on a schema element, by name, with defaults filled in (not @deprecated)."""
    found: dict[str, str] = {}
    for node in nodes:
        for directive in getattr(node, "directives", None) or ():
            name = directive.name.value
            if name == "deprecated":
                continue  # reported as a deprecation (safe)
            found[name] = _printed(schema, directive)
    return found


def _printed(schema: GraphQLSchema, directive: DirectiveNode) -> str:
    definition = schema.get_directive(directive.name.value)
    if definition is None or is_specified_directive(definition):
        return print_ast(directive)
    try:
        values = get_argument_values(definition, directive)
    except Exception:  # an invalid application is compared as written
        return print_ast(directive)
    if not values:
        return f"@{directive.name.value}"
    args = ", ".join(
        f"{key}: {json.dumps(value, sort_keys=True, default=str)}"
        for key, value in sorted(values.items())
    )
    return f"@{directive.name.value}({args})"


def _element_nodes(element: Any) -> list[Any]:
    return [element.ast_node, *(getattr(element, "extension_ast_nodes", None) or ())]


def _elements(schema: GraphQLSchema) -> dict[str, Any]:
    """Every schema coordinate that can carry applied directives, to its element."""
    found: dict[str, Any] = {}
    for name, named in _user_types(schema).items():
        found[name] = named
        if _fielded(named):
            for field_name, output in named.fields.items():
                found[f"{name}.{field_name}"] = output
                arg: GraphQLArgument
                for arg_name, arg in output.args.items():
                    found[f"{name}.{field_name}({arg_name}:)"] = arg
        elif isinstance(named, GraphQLInputObjectType):
            for field_name, input_field in named.fields.items():
                found[f"{name}.{field_name}"] = input_field
        elif isinstance(named, GraphQLEnumType):
            for value_name, value in named.values.items():
                found[f"{name}.{value_name}"] = value
    return found


def _applied_directive_changes(old: GraphQLSchema, new: GraphQLSchema) -> list[Change]:
    changes = []
    new_elements = _elements(new)
    for where, old_element in _elements(old).items():
        new_element = new_elements.get(where)
        if new_element is None:
            continue
        before = _applied(old, _element_nodes(old_element))
        after = _applied(new, _element_nodes(new_element))
        for name in sorted(before.keys() | after.keys()):
            was, now = before.get(name), after.get(name)
            if was == now:
                continue
            if was is None:
                text = f"{now} was applied to {where}."
            elif now is None:
                text = f"{was} was removed from {where}."
            else:
                text = f"{where} changed {was} to {now}."
            changes.append(Change(Level.DANGEROUS, "APPLIED_DIRECTIVE_CHANGED", text))
    return changes
