"""`/metrics` is not anonymous in production (issue #12, finding 10): it wants a bearer token
with the scope `metrics:read` (401 without a valid token, 403 without the scope), and
`TOLLGATE_METRICS_AUTH` turns that on or off in any environment."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from auth import Role
from auth.tokens import mint_token
from server.app import create_app
from tests.server.conftest import Tokens, make_settings

SECRET = "metrics-test-secret-0123456789abcdef-0123456789abcdef"


async def _client(database_url: str, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(database_url, jwt_secret=SECRET, **overrides)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


@pytest.fixture(scope="module")
async def production(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async for http in _client(database_url, env="production"):
        yield http


def _token(tokens: Tokens, *scopes: str, secret: str = SECRET) -> str:
    settings = make_settings(tokens.settings.database_url, jwt_secret=secret)
    return mint_token(
        settings.jwt(),
        subject=str(tokens.users[("acme", "ADMIN")].id),
        tenant_id=tokens.tenants["acme"],
        role=Role.ADMIN,
        scopes=scopes,
    )


async def test_production_metrics_need_a_token_with_metrics_read(
    production: httpx.AsyncClient, tokens: Tokens
) -> None:
    anonymous = await production.get("/metrics")
    assert anonymous.status_code == 401, anonymous.text
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    assert anonymous.json()["code"] == "UNAUTHENTICATED"
    assert "tollgate_" not in anonymous.text

    forged = await production.get(
        "/metrics",
        headers={"Authorization": f"Bearer {_token(tokens, 'metrics:read', secret='x' * 40)}"},
    )
    assert forged.status_code == 401
    assert 'error="invalid_token"' in forged.headers["www-authenticate"]

    # An ADMIN's ordinary token is not enough: scraping is its own grant.
    admin = await production.get(
        "/metrics", headers={"Authorization": f"Bearer {_token(tokens, 'read:orders')}"}
    )
    assert admin.status_code == 403, admin.text
    assert admin.json()["code"] == "FORBIDDEN"
    assert 'scope="metrics:read"' in admin.headers["www-authenticate"]
    assert "tollgate_" not in admin.text

    scraper = await production.get(
        "/metrics", headers={"Authorization": f"Bearer {_token(tokens, 'metrics:read')}"}
    )
    assert scraper.status_code == 200, scraper.text
    assert "tollgate_" in scraper.text


async def test_the_setting_decides_outside_production(database_url: str, tokens: Tokens) -> None:
    async for http in _client(database_url, env="development", metrics_auth=True):
        assert (await http.get("/metrics")).status_code == 401
        scraper = await http.get(
            "/metrics", headers={"Authorization": f"Bearer {_token(tokens, 'metrics:read')}"}
        )
        assert scraper.status_code == 200
    async for http in _client(database_url, env="development"):
        assert (await http.get("/metrics")).status_code == 200  # development: open by default
    async for http in _client(database_url, env="production", metrics_auth=False):
        assert (await http.get("/metrics")).status_code == 200  # an explicit opt-out
