"""A root field's error cancels its siblings (graphql-core): no loader future is left unread.

graphql-core cancels the sibling fields still running when a non-null root field fails. The
loaders' shared futures are shielded (one cancelled waiter must not cancel them for all), so
the batch they wait for still runs, possibly after the request closed its database handle;
whatever it ends with must be read, or asyncio logs "Future exception was never retrieved".
"""

from __future__ import annotations

import asyncio
import gc
import logging
import uuid
from typing import Any

import httpx
import pytest

from auth import Role
from auth.tokens import mint_token
from resolvers.ids import to_global_id
from tests.server.conftest import Tokens, gql, make_settings

# ``node`` is abstract, so graphql-core (not the batched executor) runs the document; the
# viewer's user does not exist, so the non-null root field ``viewer`` fails after one loader
# batch while its siblings wait on theirs.
DOCUMENT = """
query ($missing: ID!) {
  orders(first: 50) { totalCount nodes { id customer { id name } items { product { id name } } } }
  viewer { id }
  products(first: 50) { totalCount nodes { id averageRating reviews(first: 5) { nodes { author { id } } } } }
  users(first: 50) { totalCount nodes { id orders(first: 5) { totalCount nodes { id } } } }
  node(id: $missing) { id }
}
"""


@pytest.fixture
async def graphql_core_app(database_url: str) -> Any:
    from server.app import create_app

    app = create_app(make_settings(database_url, fast_executor=False))
    async with app.router.lifespan_context(app):
        yield app


async def test_no_unread_future_when_a_root_error_cancels_siblings(
    graphql_core_app: Any, tokens: Tokens, caplog: pytest.LogCaptureFixture
) -> None:
    settings = tokens.settings
    ghost = mint_token(
        settings.jwt(),
        subject=str(uuid.uuid4()),
        tenant_id=tokens.tenants["acme"],
        role=Role.STAFF,
    )
    unread: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()

    def handler(_loop: Any, context: dict[str, Any]) -> None:
        unread.append(context)

    loop.set_exception_handler(handler)
    transport = httpx.ASGITransport(app=graphql_core_app)
    try:
        with caplog.at_level(logging.ERROR, logger="asyncio"):
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                for _ in range(5):
                    response = await gql(
                        client,
                        DOCUMENT,
                        {"missing": to_global_id("User", uuid.uuid4())},
                        headers={"Authorization": f"Bearer {ghost}"},
                    )
                    body = response.json()
                    assert body["data"] is None
                    codes = {e["extensions"]["code"] for e in body["errors"]}
                    assert "UNAUTHENTICATED" in codes, body["errors"]
                    # Let the shielded batches finish, then collect what nobody awaited.
                    for _ in range(20):
                        await asyncio.sleep(0.01)
                    gc.collect()
                    await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(previous)
    messages = [str(c.get("message")) + repr(c.get("exception")) for c in unread]
    assert not unread, messages
    assert "never retrieved" not in caplog.text
