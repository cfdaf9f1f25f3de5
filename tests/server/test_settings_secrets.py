"""Settings never show their secrets: repr, str and validation errors."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from server.settings import Settings

SECRETS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=40, max_size=60)


@settings(max_examples=25, deadline=None)
@given(secret=SECRETS, password=SECRETS)
def test_repr_and_str_hide_the_jwt_secret_and_url_passwords(secret: str, password: str) -> None:
    configured = Settings(
        jwt_secret=secret,
        database_url=f"postgresql+asyncpg://app:{password}@db.internal/tollgate",
        redis_url=f"redis://:{password}@cache.internal:6379/0",
    )
    for shown in (repr(configured), str(configured)):
        assert secret not in shown and password not in shown
    assert configured.effective_jwt_secret == secret
    assert configured.jwt().secret == secret
