"""Roles, default scopes and the Principal value object."""

from __future__ import annotations

import dataclasses
import uuid

import pytest

import auth
from auth import ROLE_SCOPES, Principal, Role

USER = uuid.UUID("0190a3b4-0000-7000-8000-0000000000aa")
TENANT = uuid.UUID("0190a3b4-0000-7000-8000-000000000001")


def principal(subject: str = str(USER), **kwargs: object) -> Principal:
    fields: dict[str, object] = {
        "subject": subject,
        "tenant_id": TENANT,
        "role": Role.CUSTOMER,
        "scopes": ROLE_SCOPES[Role.CUSTOMER],
    }
    fields.update(kwargs)
    return Principal(**fields)  # type: ignore[arg-type]


def test_role_values_are_their_names() -> None:
    assert [r.value for r in Role] == ["CUSTOMER", "STAFF", "ADMIN"]
    for r in Role:
        assert r.value == r.name
        assert isinstance(r, str) and r == r.name
    assert Role("ADMIN") is Role.ADMIN
    with pytest.raises(ValueError):
        Role("admin")


def test_role_scopes_are_exactly_the_documented_sets() -> None:
    customer = {"read:orders", "read:products", "read:users", "write:orders"}
    staff = customer | {"orders:internal", "graphql:introspect", "graphql:adhoc"}
    admin = staff | {"write:products", "privacy:admin", "pq:admin", "write:webhooks"}
    expected = {Role.CUSTOMER: customer, Role.STAFF: staff, Role.ADMIN: admin}
    assert expected == ROLE_SCOPES
    assert all(isinstance(s, frozenset) for s in ROLE_SCOPES.values())


def test_user_id_parses_canonical_uuid_subjects() -> None:
    assert principal().user_id == USER
    assert principal(str(USER).upper()).user_id == USER


@pytest.mark.parametrize(
    "subject", ["ci-bot", "", USER.hex, f"{{{USER}}}", f"urn:uuid:{USER}", f" {USER}"]
)
def test_user_id_is_none_for_non_canonical_subjects(subject: str) -> None:
    assert principal(subject).user_id is None


def test_has_scope() -> None:
    p = principal(scopes=frozenset({"read:orders"}))
    assert p.has_scope("read:orders")
    assert not p.has_scope("write:orders")
    assert not p.has_scope("")


def test_anonymous_principal() -> None:
    p = Principal.anonymous_principal("198.51.100.7")
    assert p.anonymous
    assert p.client_ip == "198.51.100.7"
    assert p.tenant_id is None and p.role is None and p.scopes == frozenset()
    assert p.user_id is None
    assert p.tier == "anonymous"
    assert Principal.anonymous_principal(None).client_ip is None


def test_anonymous_user_id_is_none_even_with_a_uuid_subject() -> None:
    p = principal(anonymous=True)
    assert p.user_id is None


def test_principal_is_frozen_hashable_and_slotted() -> None:
    p = principal()
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.role = Role.ADMIN  # type: ignore[misc]
    assert not hasattr(p, "__dict__")
    assert hash(p) == hash(principal())
    assert dataclasses.replace(p, client_ip="10.0.0.1").client_ip == "10.0.0.1"
    assert p.tier == "default" and p.client_ip is None and p.anonymous is False


def test_package_exports() -> None:
    for name in auth.__all__:
        assert hasattr(auth, name), name
    assert {"Principal", "Role", "TokenVerifier", "JWTSettings", "AuthError"} <= set(auth.__all__)


def test_auth_imports_no_framework_or_sibling_package() -> None:
    import subprocess
    import sys

    code = (
        "import sys, auth, auth.tokens, auth.policy, auth.principal\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in {"
        "'strawberry', 'starlette', 'graphql', 'sqlalchemy', 'redis', 'server', 'schema',"
        " 'resolvers', 'loaders', 'guards', 'persisted_queries', 'database', 'observability'}]\n"
        "assert not bad, bad\n"
    )
    root = str(__import__("pathlib").Path(auth.__file__).resolve().parent.parent)
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root, timeout=60)
