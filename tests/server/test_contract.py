"""The served SDL keeps every part of the public contract (compared as parsed schemas)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from graphql import (
    GraphQLSchema,
    build_schema,
    find_breaking_changes,
    find_dangerous_changes,
    is_object_type,
    print_ast,
)

from schema import build_schema as build_served
from tests.server.conftest import OPERATIONS

CONTRACT = OPERATIONS.parent / "schema.graphql"
ROOT = Path(__file__).resolve().parents[2]


def _served() -> GraphQLSchema:
    return build_schema(build_served().as_str())


def _contract() -> GraphQLSchema:
    return build_schema(CONTRACT.read_text(encoding="utf-8"))


def _applied(schema: GraphQLSchema) -> dict[str, list[str]]:
    """Every applied directive, by type.field, printed."""
    found: dict[str, list[str]] = {}
    for name, named in schema.type_map.items():
        if name.startswith("__") or not is_object_type(named):
            continue
        for field_name, field in named.fields.items():  # type: ignore[attr-defined]
            node = field.ast_node
            directives = sorted(print_ast(d) for d in ((node.directives or ()) if node else ()))
            if directives:
                found[f"{name}.{field_name}"] = directives
    return found


def test_served_schema_has_no_breaking_or_dangerous_change_against_the_contract() -> None:
    contract, served = _contract(), _served()
    assert [str(c) for c in find_breaking_changes(contract, served)] == []
    assert [str(c) for c in find_dangerous_changes(contract, served)] == []


def test_every_contract_type_field_argument_and_nullability_is_served() -> None:
    contract, served = _contract(), _served()
    for name, named in contract.type_map.items():
        if name.startswith("__"):
            continue
        assert name in served.type_map, name
        mine = served.type_map[name]
        assert type(mine) is type(named), name
        for field_name, field in getattr(named, "fields", {}).items():
            assert field_name in mine.fields, f"{name}.{field_name}"  # type: ignore[attr-defined]
            ours = mine.fields[field_name]  # type: ignore[attr-defined]
            assert str(ours.type) == str(field.type), f"{name}.{field_name}"
            for arg_name, arg in getattr(field, "args", {}).items():
                assert str(ours.args[arg_name].type) == str(arg.type), (
                    f"{name}.{field_name}({arg_name})"
                )
                assert ours.args[arg_name].default_value == arg.default_value
        for value in getattr(named, "values", {}):
            assert value in mine.values, f"{name}.{value}"  # type: ignore[attr-defined]


def test_cost_directives_are_declared_and_applied_as_in_the_contract() -> None:
    contract, served = _contract(), _served()
    for directive in ("cost", "listSize"):
        theirs, ours = contract.get_directive(directive), served.get_directive(directive)
        assert ours is not None
        assert theirs is not None
        assert set(ours.locations) == set(theirs.locations)
        assert {k: str(v.type) for k, v in ours.args.items()} == {
            k: str(v.type) for k, v in theirs.args.items()
        }
    served_applied = _applied(served)
    for field, directives in _applied(contract).items():
        # The contract omits requireOneSlicingArgument where it keeps its default (true);
        # @cacheControl hints are an addition (docs/caching.md).
        ours = [
            d.replace(", requireOneSlicingArgument: true", "")
            for d in served_applied[field]
            if not d.startswith("@cacheControl")
        ]
        assert ours == directives, field


def test_every_served_type_and_field_has_a_description() -> None:
    served = build_served()._schema
    for name, named in served.type_map.items():
        if name.startswith("__") or name in ("String", "Int", "Float", "Boolean", "ID"):
            continue
        assert named.description, name
        for field_name, field in getattr(named, "fields", {}).items():
            if hasattr(field, "args"):
                assert field.description, f"{name}.{field_name}"


def test_the_sdl_command_prints_the_served_schema() -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "server", "sdl"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert printed.strip() == build_served().as_str().strip()
    assert "directive @listSize" in printed and "directive @cost" in printed
