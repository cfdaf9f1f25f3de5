"""Every policy predicate for every role, plus anonymous callers and missing scopes."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable

import pytest

from auth import ROLE_SCOPES, Principal, Role, policy

TENANT = uuid.UUID("0190a3b4-0000-7000-8000-000000000001")
ME = uuid.UUID("0190a3b4-0000-7000-8000-0000000000aa")
SOMEONE_ELSE = uuid.UUID("0190a3b4-0000-7000-8000-0000000000bb")


def as_role(role: Role | None, user: uuid.UUID = ME) -> Principal:
    return Principal(
        subject=str(user),
        tenant_id=TENANT,
        role=role,
        scopes=ROLE_SCOPES[role] if role is not None else frozenset(),
    )


CUSTOMER = as_role(Role.CUSTOMER)
STAFF = as_role(Role.STAFF)
ADMIN = as_role(Role.ADMIN)
NO_ROLE = as_role(None)
ANON = Principal.anonymous_principal("203.0.113.1")
CALLERS = {"CUSTOMER": CUSTOMER, "STAFF": STAFF, "ADMIN": ADMIN, "NO_ROLE": NO_ROLE, "ANON": ANON}

# predicate -> the callers (with their role's default scopes) it allows
EXPECTED: dict[str, tuple[Callable[[Principal], bool], set[str]]] = {
    "is_staff": (policy.is_staff, {"STAFF", "ADMIN"}),
    "is_admin": (policy.is_admin, {"ADMIN"}),
    "email_of_self": (
        lambda p: policy.can_read_user_email(p, ME),
        {"CUSTOMER", "STAFF", "ADMIN", "NO_ROLE"},
    ),
    "email_of_other": (lambda p: policy.can_read_user_email(p, SOMEONE_ELSE), {"STAFF", "ADMIN"}),
    "email_of_unknown": (lambda p: policy.can_read_user_email(p, None), {"STAFF", "ADMIN"}),
    "unit_cost": (policy.can_read_unit_cost, {"ADMIN"}),
    "internal_note": (policy.can_read_internal_note, {"STAFF", "ADMIN"}),
    "introspect_demo": (
        lambda p: policy.can_introspect(p, production=False),
        {"CUSTOMER", "STAFF", "ADMIN", "NO_ROLE"},
    ),
    "introspect_prod": (lambda p: policy.can_introspect(p, production=True), {"STAFF", "ADMIN"}),
    "adhoc": (policy.can_run_adhoc, {"STAFF", "ADMIN"}),
    "write_orders": (policy.can_write_orders, {"CUSTOMER", "STAFF", "ADMIN"}),
    "manage_products": (policy.can_manage_products, {"ADMIN"}),
    "list_users": (policy.can_list_users, {"STAFF", "ADMIN"}),
    "own_order": (
        lambda p: policy.order_visible_to(p, ME),
        {"CUSTOMER", "STAFF", "ADMIN", "NO_ROLE"},
    ),
    "others_order": (lambda p: policy.order_visible_to(p, SOMEONE_ELSE), {"STAFF", "ADMIN"}),
}


@pytest.mark.parametrize("rule", sorted(EXPECTED))
@pytest.mark.parametrize("caller", sorted(CALLERS))
def test_policy_matrix(rule: str, caller: str) -> None:
    predicate, allowed = EXPECTED[rule]
    assert predicate(CALLERS[caller]) is (caller in allowed)


def without(p: Principal, scope: str) -> Principal:
    return dataclasses.replace(p, scopes=p.scopes - {scope})


def test_scoped_rules_need_the_scope_as_well_as_the_role() -> None:
    for p in (STAFF, ADMIN):
        assert not policy.can_read_internal_note(without(p, "orders:internal"))
        assert not policy.can_introspect(without(p, "graphql:introspect"), production=True)
        assert policy.can_introspect(without(p, "graphql:introspect"), production=False)
        assert not policy.can_run_adhoc(without(p, "graphql:adhoc"))
        assert not policy.can_write_orders(without(p, "write:orders"))
    assert not policy.can_manage_products(without(ADMIN, "write:products"))
    assert not policy.can_write_orders(without(CUSTOMER, "write:orders"))


def test_scopes_do_not_grant_roles() -> None:
    """A customer holding staff or admin scopes still gets no role-gated access."""
    loaded = dataclasses.replace(CUSTOMER, scopes=ROLE_SCOPES[Role.ADMIN])
    assert not policy.is_staff(loaded)
    assert not policy.can_read_internal_note(loaded)
    assert not policy.can_manage_products(loaded)
    assert not policy.can_read_unit_cost(loaded)
    assert not policy.can_list_users(loaded)
    assert not policy.order_visible_to(loaded, SOMEONE_ELSE)
    # ...while purely scope-based rules follow the scopes.
    assert policy.can_run_adhoc(loaded)
    assert policy.can_introspect(loaded, production=True)


def test_anonymous_is_denied_even_if_fields_are_tampered() -> None:
    """An anonymous principal never passes, whatever else it carries."""
    forged = dataclasses.replace(
        ANON, role=Role.ADMIN, scopes=ROLE_SCOPES[Role.ADMIN], subject=str(ME)
    )
    for name, (predicate, _) in EXPECTED.items():
        assert predicate(forged) is False, name


def test_service_subjects_are_never_a_user() -> None:
    bot = dataclasses.replace(CUSTOMER, subject="ci-bot")
    assert not policy.can_read_user_email(bot, ME)
    assert not policy.order_visible_to(bot, ME)
