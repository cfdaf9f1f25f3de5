"""`python -m server schema check`: the contract against the served schema, and each class of change."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from server.schema_check import Level, Report, compare_sdl
from tests.server.conftest import OPERATIONS

CONTRACT = OPERATIONS.parent / "schema.graphql"
ROOT = Path(__file__).resolve().parents[2]

BASE = """
directive @cost(weight: Int!) on FIELD_DEFINITION | OBJECT | SCALAR | ENUM | ARGUMENT_DEFINITION
directive @listSize(
  assumedSize: Int, slicingArguments: [String!], sizedFields: [String!],
  requireOneSlicingArgument: Boolean = true
) on FIELD_DEFINITION
enum Status { OPEN CLOSED }
input Filter { status: Status }
type Product { id: ID! name: String! price: Int }
type Legacy { id: ID! }
type Query {
  product(id: ID!): Product
  products(first: Int = 20, filter: Filter): [Product!]! @listSize(slicingArguments: ["first"])
  rating: Float @cost(weight: 2)
  status: Status
}
"""


def _changed(old: str, new: str) -> str:
    assert old in BASE, old
    return BASE.replace(old, new)


def _kinds(report: Report, level: Level) -> list[str]:
    return [change.kind for change in report.of(level)]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server", "schema", "check", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_served_schema_passes_the_check_against_the_contract() -> None:
    result = _cli(str(CONTRACT))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 breaking" in result.stdout
    assert "Result: " in result.stdout
    # The demonstration deprecated field is reported as a safe addition.
    assert "FIELD_ADDED" in result.stdout and "Product.inStock" in result.stdout


def test_contract_check_as_json_lists_changes_by_level() -> None:
    result = _cli(str(CONTRACT), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["summary"]["breaking"] == 0 and report["breaking"] == []
    assert {"type": "FIELD_ADDED", "description": "Field Product.inStock: Boolean! was added."} in (
        report["safe"]
    )


def test_breaking_pair_exits_1_from_the_cli(tmp_path: Path) -> None:
    old, new = tmp_path / "old.graphql", tmp_path / "new.graphql"
    old.write_text(BASE, encoding="utf-8")
    new.write_text(_changed("name: String! price: Int", "name: String!"), encoding="utf-8")
    result = _cli(str(old), "--new", str(new))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FIELD_REMOVED" in result.stdout and "Product.price" in result.stdout
    assert "BREAKING (1)" in result.stdout
    as_json = json.loads(_cli(str(old), "--new", str(new), "--json").stdout)
    assert as_json["summary"] == {"breaking": 1, "dangerous": 0, "safe": 0}


def test_dangerous_only_pair_exits_0(tmp_path: Path) -> None:
    old, new = tmp_path / "old.graphql", tmp_path / "new.graphql"
    old.write_text(BASE, encoding="utf-8")
    new.write_text(_changed("OPEN CLOSED", "OPEN CLOSED ARCHIVED"), encoding="utf-8")
    result = _cli(str(old), "--new", str(new))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "VALUE_ADDED_TO_ENUM" in result.stdout


def test_unreadable_or_invalid_input_exits_2(tmp_path: Path) -> None:
    missing = _cli(str(tmp_path / "nope.graphql"))
    assert missing.returncode == 2 and missing.stderr.startswith("tollgate: error: no such SDL")
    broken = tmp_path / "broken.graphql"
    broken.write_text("type Query {", encoding="utf-8")
    invalid = _cli(str(broken))
    assert invalid.returncode == 2 and invalid.stderr.startswith("tollgate: error: schema check:")
    assert len(invalid.stderr.strip().splitlines()) == 1


def test_identical_schemas_have_no_change() -> None:
    report = compare_sdl(BASE, BASE)
    assert report.changes == [] and report.exit_code == 0


@pytest.mark.parametrize(
    ("old", "new", "kind"),
    [
        ("name: String! price: Int", "name: String!", "FIELD_REMOVED"),
        ("name: String!", "name: String", "FIELD_CHANGED_KIND"),
        ("products(first: Int = 20,", "products(first: Int! = 20,", "ARG_CHANGED_KIND"),
        ("product(id: ID!)", "product(id: ID!, tenant: ID!)", "REQUIRED_ARG_ADDED"),
        ("OPEN CLOSED", "OPEN", "VALUE_REMOVED_FROM_ENUM"),
        (
            "input Filter { status: Status }",
            "input Filter { status: Status q: String! }",
            "REQUIRED_INPUT_FIELD_ADDED",
        ),
        ("type Legacy { id: ID! }", "", "TYPE_REMOVED"),
    ],
)
def test_breaking_changes(old: str, new: str, kind: str) -> None:
    report = compare_sdl(BASE, _changed(old, new))
    assert report.breaking and report.exit_code == 1
    assert kind in _kinds(report, Level.BREAKING)


@pytest.mark.parametrize(
    ("old", "new", "kind"),
    [
        ("OPEN CLOSED", "OPEN CLOSED ARCHIVED", "VALUE_ADDED_TO_ENUM"),
        ("products(first: Int = 20,", "products(first: Int = 50,", "ARG_DEFAULT_VALUE_CHANGE"),
        ("input Filter { status: Status }", "input Filter { status: Status q: String }", None),
        ("product(id: ID!)", "product(id: ID!, exact: Boolean! = true)", "OPTIONAL_ARG_ADDED"),
        ("rating: Float @cost(weight: 2)", "rating: Float @cost(weight: 5)", None),
        ("rating: Float @cost(weight: 2)", "rating: Float", None),
        ('@listSize(slicingArguments: ["first"])', "@listSize(assumedSize: 50)", None),
    ],
)
def test_dangerous_changes(old: str, new: str, kind: str | None) -> None:
    report = compare_sdl(BASE, _changed(old, new))
    assert not report.breaking and report.exit_code == 0
    if kind is None:
        kind = "OPTIONAL_INPUT_FIELD_ADDED" if "input" in old else "APPLIED_DIRECTIVE_CHANGED"
    assert _kinds(report, Level.DANGEROUS) == [kind]


def test_cost_weight_change_names_the_field_and_both_weights() -> None:
    report = compare_sdl(
        BASE, _changed("rating: Float @cost(weight: 2)", "rating: Float @cost(weight: 5)")
    )
    (change,) = report.of(Level.DANGEROUS)
    assert change.description == "Query.rating changed @cost(weight: 2) to @cost(weight: 5)."


def test_directive_defaults_are_compared_not_their_spelling() -> None:
    spelled_out = _changed(
        '@listSize(slicingArguments: ["first"])',
        '@listSize(slicingArguments: ["first"], requireOneSlicingArgument: true)',
    )
    assert compare_sdl(BASE, spelled_out).changes == []


@pytest.mark.parametrize(
    ("old", "new", "kind"),
    [
        ("product(id: ID!)", "product(id: ID!, locale: String)", "OPTIONAL_ARG_ADDED"),
        ("type Product {", "type Review { id: ID! }\ntype Product {", "TYPE_ADDED"),
        ("name: String! price: Int", "name: String! price: Int sku: String", "FIELD_ADDED"),
        ("price: Int", "price: Int!", "FIELD_CHANGED_KIND_SAFE"),
        ("product(id: ID!)", "product(id: ID)", "ARG_CHANGED_KIND_SAFE"),
        ("price: Int", 'price: Int @deprecated(reason: "Use cost.")', "FIELD_DEPRECATED"),
        ("enum Status {", "directive @beta on FIELD_DEFINITION\nenum Status {", "DIRECTIVE_ADDED"),
    ],
)
def test_safe_changes(old: str, new: str, kind: str) -> None:
    report = compare_sdl(BASE, _changed(old, new))
    assert not report.breaking and report.of(Level.DANGEROUS) == []
    assert _kinds(report, Level.SAFE) == [kind]


def test_report_renders_levels_in_order() -> None:
    new = _changed("name: String! price: Int", "name: String! sku: String")
    new = new.replace("OPEN CLOSED", "OPEN CLOSED ARCHIVED")
    text = compare_sdl(BASE, new).render("v1.graphql", "v2.graphql")
    assert text.splitlines()[:2] == [
        "Schema check: v1.graphql -> v2.graphql",
        "1 breaking, 1 dangerous, 1 safe",
    ]
    assert text.index("BREAKING (1)") < text.index("DANGEROUS (1)") < text.index("SAFE (1)")
    assert text.endswith("Result: BREAKING changes found (exit 1).")
