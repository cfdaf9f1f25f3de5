"""Every field with a permission is declared once and refused alike by both executors.

The test walks the schema: each field carrying a Strawberry permission class must have its
declaration in ``schema.fields`` (the class asks that declaration, and so does the batched
executor's guard). Then, for every such field, every path the schema offers from the root to
its type (up to a few levels), and every role in both tenants, it runs the same document on
both executors and checks that the field is refused exactly where the declaration's
permission says no, and nowhere else.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from graphql import (
    GraphQLField,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
)

from auth import Principal, Role
from auth.tokens import mint_token
from resolvers.ids import from_global_id
from schema import build_schema, fields
from schema.bindings import BINDINGS
from schema.executor import FastExecutor, Leaf
from server.app import create_app
from tests.server.conftest import Tokens, gql, make_settings

MAX_DEPTH = 4
ROLES = ("CUSTOMER", "STAFF", "ADMIN")
TENANTS = ("acme", "globex")


def _named(type_: Any) -> Any:
    while isinstance(type_, GraphQLNonNull | GraphQLList):
        type_ = type_.of_type
    return type_


def _permitted_fields(schema: GraphQLSchema) -> list[tuple[str, str, GraphQLField]]:
    found = []
    for type_ in schema.type_map.values():
        if not isinstance(type_, GraphQLObjectType) or type_.name.startswith("__"):
            continue
        for name, field in type_.fields.items():
            definition = (field.extensions or {}).get("strawberry-definition")
            if getattr(definition, "permission_classes", None):
                found.append((type_.name, name, field))
    return found


def _paths(schema: GraphQLSchema, target: str) -> Iterator[list[tuple[str, GraphQLField]]]:
    """Paths of (field name, field) from Query to an object of ``target`` type."""

    def walk(
        type_: GraphQLObjectType, path: list[tuple[str, GraphQLField]]
    ) -> Iterator[list[tuple[str, GraphQLField]]]:
        if type_.name == target and path:
            yield path
            return
        if len(path) >= MAX_DEPTH:
            return
        for name, field in type_.fields.items():
            if any(isinstance(a.type, GraphQLNonNull) for a in field.args.values()):
                continue  # needs an argument we cannot invent (an id)
            if name == "edges":
                continue  # nodes reach the same objects
            output = _named(field.type)
            if isinstance(output, GraphQLObjectType):
                yield from walk(output, [*path, (name, field)])

    assert schema.query_type is not None
    yield from walk(schema.query_type, [])


def _document(path: list[tuple[str, GraphQLField]], field_name: str, field: GraphQLField) -> str:
    leaf = field_name
    if isinstance(_named(field.type), GraphQLObjectType):
        leaf += " { amount currency }"
    text = f"id {leaf}"
    for name, definition in reversed(path):
        args = "(first: 3)" if "first" in definition.args else ""
        text = f"{name}{args} {{ {text} }}"
    return "{ " + text + " }"


def _objects(data: Any, path: list[str]) -> Iterator[tuple[tuple[Any, ...], dict[str, Any]]]:
    """(response path, object) of every object at the end of ``path``."""

    def walk(value: Any, rest: list[str], at: tuple[Any, ...]) -> Iterator[Any]:
        if value is None:
            return
        if isinstance(value, list):
            for index, item in enumerate(value):
                yield from walk(item, rest, (*at, index))
            return
        if not rest:
            yield at, value
            return
        yield from walk(value.get(rest[0]), rest[1:], (*at, rest[0]))

    yield from walk(data, path, ())


def _answer(body: dict[str, Any]) -> tuple[Any, list[Any]]:
    """``data`` and the errors (message, path, code), without the budget's extensions."""
    errors = sorted(
        (e["message"], e.get("path"), e["extensions"]["code"]) for e in body.get("errors", [])
    )
    return body.get("data"), errors


class _Row:
    def __init__(self, global_id: str) -> None:
        self.id = from_global_id(global_id)[1]


def test_every_permission_is_declared_once() -> None:
    schema = build_schema()._schema
    permitted = _permitted_fields(schema)
    assert {(t, n) for t, n, _ in permitted} == {
        (f.type_name, f.name) for f in fields.READ_FIELDS.values() if f.permission is not None
    }
    for type_name, name, field in permitted:
        declared = fields.permission_of(type_name, name)
        assert declared is not None, f"{type_name}.{name} has no declaration"
        classes = field.extensions["strawberry-definition"].permission_classes
        assert [getattr(c, "field", None) for c in classes] == [declared], (type_name, name)
        binding = BINDINGS[type_name][name]
        assert getattr(binding, "guard", None) == declared.allowed, (type_name, name)


def test_a_permission_without_a_guard_never_runs_on_the_batched_executor() -> None:
    """A permission class added to a type alone: the batched executor hands the document to
    graphql-core (which enforces it) instead of reading the field unguarded."""
    from graphql import parse

    schema = build_schema()._schema
    unguarded = {t: dict(b) for t, b in BINDINGS.items()}
    unguarded["Product"]["unitCost"] = type(BINDINGS["Product"]["unitCost"])(
        BINDINGS["Product"]["unitCost"].read  # type: ignore[union-attr]
    )
    document = parse("{ products { nodes { unitCost { amount } } } }")
    operation = document.definitions[0]
    assert FastExecutor(schema, BINDINGS).plan(document, operation, {}) is not None  # type: ignore[arg-type]
    assert FastExecutor(schema, unguarded).plan(document, operation, {}) is None  # type: ignore[arg-type]
    assert isinstance(BINDINGS["User"]["email"], Leaf)


@pytest.fixture(scope="module")
async def apps(database_url: str) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    made = {
        "batched": create_app(make_settings(database_url)),
        "graphql-core": create_app(make_settings(database_url, fast_executor=False)),
    }
    clients: dict[str, httpx.AsyncClient] = {}
    try:
        for key, app in made.items():
            await app.router.lifespan_context(app).__aenter__()
            clients[key] = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://t"
            )
        yield clients
    finally:
        for client in clients.values():
            await client.aclose()
        for app in made.values():
            await app.state.engine.dispose()


async def test_both_executors_refuse_each_permitted_field_as_declared(
    apps: dict[str, httpx.AsyncClient], tokens: Tokens
) -> None:
    schema = build_schema()._schema
    checked = refused = allowed = 0
    for type_name, name, field in _permitted_fields(schema):
        declared = fields.permission_of(type_name, name)
        assert declared is not None and declared.permission is not None
        for path in _paths(schema, type_name):
            document = _document(path, name, field)
            keys = [p for p, _ in path]
            for tenant in TENANTS:
                for role in ROLES:
                    for scopes in ((), ("orders:internal",)):
                        user = tokens.users[(tenant, role)]
                        principal = Principal(
                            subject=str(user.id),
                            tenant_id=tokens.tenants[tenant],
                            role=Role(role),
                            scopes=frozenset(scopes),
                        )
                        token = mint_token(
                            tokens.settings.jwt(),
                            subject=str(user.id),
                            tenant_id=tokens.tenants[tenant],
                            role=Role(role),
                            scopes=scopes,
                        )
                        headers = {"Authorization": f"Bearer {token}"}
                        bodies = {
                            key: (await gql(client, document, headers=headers)).json()
                            for key, client in apps.items()
                        }
                        assert _answer(bodies["batched"]) == _answer(bodies["graphql-core"]), (
                            document
                        )
                        body = bodies["batched"]
                        forbidden = {
                            tuple(e["path"])
                            for e in body.get("errors", [])
                            if e["extensions"]["code"] == "FORBIDDEN"
                        }
                        for at, obj in _objects(body.get("data"), keys):
                            may = declared.permission(principal, _Row(obj["id"]))
                            where = (*at, name)
                            checked += 1
                            if may:
                                allowed += 1
                                assert where not in forbidden, (document, role, where)
                            else:
                                refused += 1
                                assert where in forbidden and obj[name] is None, (
                                    document,
                                    role,
                                    where,
                                )
    print(f"permitted fields checked: {checked} objects ({refused} refused, {allowed} allowed)")
    assert refused and allowed
