"""`products(search:)` refuses C0 control characters (issue #12, finding 11).

On SQLite a NUL in the pattern cut it short, so `search: "\\u0000"` matched every product.
Any character U+0000..U+001F in `search` is now BAD_USER_INPUT with the argument named, on
both executors and both databases (the `database_url` fixture runs SQLite and PostgreSQL).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.app import create_app
from tests.server.conftest import Tokens, gql, make_settings

QUERY = "query($s: String) { products(first: 5, search: $s) { totalCount nodes { id } } }"
CONTROL = st.characters(min_codepoint=0, max_codepoint=0x1F)
TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x2FFF, exclude_categories=["Cs"]))


@pytest.fixture(scope="module")
async def generic_client(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The same app with graphql-core's executor only (``fast_executor=False``)."""
    application = create_app(make_settings(database_url, fast_executor=False))
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


def _assert_refused(body: dict[str, object], character: str) -> None:
    errors = body.get("errors")
    assert isinstance(errors, list) and len(errors) == 1, body
    (error,) = errors
    assert error["extensions"]["code"] == "BAD_USER_INPUT", body
    assert error["extensions"]["argument"] == "search", body
    assert f"U+{ord(character):04X}" in error["message"], body
    assert body.get("data") is None, body


async def test_a_nul_matches_nothing_it_is_refused(
    client: httpx.AsyncClient, generic_client: httpx.AsyncClient, tokens: Tokens
) -> None:
    for http in (client, generic_client):
        response = await gql(http, QUERY, {"s": "\u0000"}, tokens.headers("CUSTOMER"))
        assert response.status_code == 200
        _assert_refused(response.json(), "\u0000")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(before=TEXT, control=CONTROL, after=TEXT)
async def test_any_control_character_is_bad_user_input(
    client: httpx.AsyncClient,
    generic_client: httpx.AsyncClient,
    tokens: Tokens,
    before: str,
    control: str,
    after: str,
) -> None:
    search = (before + control + after)[:200]
    if control not in search:  # cut off by the 200-character limit
        search = control
    for http in (client, generic_client):
        response = await gql(http, QUERY, {"s": search}, tokens.headers("CUSTOMER"))
        assert response.status_code == 200
        _assert_refused(response.json(), next(c for c in search if ord(c) < 0x20))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(search=TEXT.filter(lambda s: len(s) <= 200))
async def test_printable_search_text_is_answered_alike_by_both_executors(
    client: httpx.AsyncClient, generic_client: httpx.AsyncClient, tokens: Tokens, search: str
) -> None:
    fast = await gql(client, QUERY, {"s": search}, tokens.headers("CUSTOMER"))
    generic = await gql(generic_client, QUERY, {"s": search}, tokens.headers("CUSTOMER"))
    assert fast.status_code == generic.status_code == 200
    assert "errors" not in fast.json(), fast.json()
    assert fast.json()["data"] == generic.json()["data"]
