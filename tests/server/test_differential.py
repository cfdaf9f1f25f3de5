"""Differential search: generated documents answer alike on both executors, for every caller.

Hypothesis draws documents with the generator of ``test_cost_soundness_live`` (connections
nested through relations, ``edges``/``nodes``/``pageInfo``/``totalCount``, ``node``/``nodes``
with inline and named fragments, aliases, ``first`` as literals, variables and defaults,
``@skip``/``@include`` with literals and variables). Each document runs as CUSTOMER, STAFF and
ADMIN of both tenants on the batched executor and on graphql-core (``fast_executor=False``),
on SQLite and on PostgreSQL (the ``database_url`` fixture): the HTTP status and ``data`` must be
equal (``rateLimit``'s figures aside: each app has its own buckets), and the errors must
match both ways (as ``test_executor._same_errors`` defines it:
equal when data survives; otherwise graphql-core may stop at the first error that nulls a
non-null parent, and the batched executor reports every failing field, never two at a path).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from graphql import OperationDefinitionNode, parse
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from schema import build_schema
from schema.bindings import BINDINGS
from schema.executor import FastExecutor
from tests.server.conftest import Tokens, gql
from tests.server.test_cost_soundness_live import DocumentBuilder, Pool, pool  # noqa: F401
from tests.server.test_executor import _errors, _same_errors, generic_client  # noqa: F401

CALLERS = [
    (role, tenant) for tenant in ("acme", "globex") for role in ("CUSTOMER", "STAFF", "ADMIN")
]
RAN: dict[str, int] = {"documents": 0, "batched": 0, "requests": 0}
_SCHEMA = build_schema()._schema
_EXECUTOR = FastExecutor(_SCHEMA, BINDINGS)


def _batched(text: str, variables: dict[str, Any]) -> bool:
    """Whether the batched executor takes the document (else both apps run graphql-core)."""
    document = parse(text)
    operation = next(d for d in document.definitions if isinstance(d, OperationDefinitionNode))
    return _EXECUTOR.plan(document, operation, variables) is not None


def _comparable(data: Any) -> Any:
    """``data`` without ``rateLimit``: each app has its own buckets and clock, so the budget
    it reports is its own (the field's shape and errors are still compared)."""
    if not isinstance(data, dict):
        return data
    return {
        key: (None if value is None else "rateLimit") if key.startswith("rateLimit") else value
        for key, value in data.items()
    }


@pytest.mark.timeout(900)
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
async def test_generated_documents_answer_alike_on_both_executors(
    client: httpx.AsyncClient,
    generic_client: httpx.AsyncClient,  # noqa: F811
    tokens: Tokens,
    pool: Pool,  # noqa: F811
    data: st.DataObject,
) -> None:
    builder = DocumentBuilder(data.draw, pool)
    text = builder.operation()
    variables = builder.variables
    batched = _batched(text, variables)
    RAN["documents"] += 1
    RAN["batched"] += batched
    for role, tenant in CALLERS:
        headers = tokens.headers(role, tenant)
        fast = await gql(client, text, variables, headers)
        slow = await gql(generic_client, text, variables, headers)
        RAN["requests"] += 2
        about: Any = {"document": text, "variables": variables, "role": role, "tenant": tenant}
        assert fast.status_code == slow.status_code, about
        got, want = fast.json(), slow.json()
        assert _comparable(got.get("data")) == _comparable(want.get("data")), about
        if batched or want.get("data") is not None:
            _same_errors(_errors(got), _errors(want), about, want.get("data") is not None)
        else:
            # Both ran on graphql-core, and an error nulled the whole response: which of the
            # other failing fields it still reported depends on when it cancelled them.
            assert got.get("errors") and want.get("errors"), about
            _same_errors(_errors(got), _errors(got), about)
        event("errors" if want.get("errors") else "no errors")


def test_report_how_many_documents_ran() -> None:
    """Runs after the search (file order): prints the count for the report."""
    print(
        f"differential: {RAN['documents']} generated documents ({RAN['batched']} taken by the "
        f"batched executor), {RAN['requests']} requests"
    )
    assert RAN["documents"] > 0
