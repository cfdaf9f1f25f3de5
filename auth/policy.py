"""Authorization rules as pure predicates over a `Principal` (no I/O, no framework).

Tenant isolation is not decided here: every query is scoped to `principal.tenant_id` in SQL.
These predicates decide what a caller may do or see within its own tenant.
"""

from __future__ import annotations

import uuid

from auth.principal import Principal, Role

__all__ = [
    "READ_SCOPES",
    "can_introspect",
    "can_list_users",
    "can_manage_products",
    "can_read",
    "can_read_internal_note",
    "can_read_metrics",
    "can_read_unit_cost",
    "can_read_user_email",
    "can_run_adhoc",
    "can_write_orders",
    "is_admin",
    "is_staff",
    "order_visible_to",
]

_STAFF_ROLES = frozenset({Role.STAFF, Role.ADMIN})

# The read scopes and the object type each one names. A token that carries any `read:*` scope
# reads a named type only with its scope; a token without one keeps the role rules alone.
READ_SCOPES: dict[str, str] = {
    "Order": "read:orders",
    "Product": "read:products",
    "User": "read:users",
}


def _authenticated(p: Principal) -> bool:
    return not p.anonymous


def is_staff(p: Principal) -> bool:
    """STAFF or ADMIN."""
    return _authenticated(p) and p.role in _STAFF_ROLES


def is_admin(p: Principal) -> bool:
    """ADMIN."""
    return _authenticated(p) and p.role is Role.ADMIN


def _is_user(p: Principal, user_id: uuid.UUID | None) -> bool:
    own = p.user_id
    return own is not None and user_id is not None and own == user_id


def can_read_user_email(p: Principal, owner_user_id: uuid.UUID | None) -> bool:
    """The user themself, STAFF or ADMIN may read `User.email`."""
    return is_staff(p) or _is_user(p, owner_user_id)


def can_read(p: Principal, type_name: str) -> bool:
    """Whether the token's read scopes let it look up or list objects of ``type_name``.

    Only tokens that carry some `read:*` scope are restricted by them (the role rules apply
    on top either way); types no scope names (`Review`) are always readable.
    """
    scope = READ_SCOPES.get(type_name)
    if scope is None or scope in p.scopes:
        return True
    return not any(granted.startswith("read:") for granted in p.scopes)


def can_read_unit_cost(p: Principal) -> bool:
    """Only ADMIN may read `Product.unitCost`."""
    return is_admin(p)


def can_read_internal_note(p: Principal) -> bool:
    """STAFF or ADMIN holding `orders:internal` may read `Order.internalNote`."""
    return is_staff(p) and p.has_scope("orders:internal")


def can_introspect(p: Principal, *, production: bool) -> bool:
    """Demo: any authenticated caller; production: only callers with `graphql:introspect`."""
    if not _authenticated(p):
        return False
    return p.has_scope("graphql:introspect") if production else True


def can_read_metrics(p: Principal) -> bool:
    """Scraping ``/metrics`` where it is protected needs `metrics:read` (no role grants it)."""
    return _authenticated(p) and p.has_scope("metrics:read")


def can_run_adhoc(p: Principal) -> bool:
    """Ad-hoc (non-persisted) documents under the allowlist need `graphql:adhoc`."""
    return _authenticated(p) and p.has_scope("graphql:adhoc")


def can_write_orders(p: Principal) -> bool:
    """Placing and changing orders needs `write:orders`."""
    return _authenticated(p) and p.has_scope("write:orders")


def can_manage_products(p: Principal) -> bool:
    """ADMIN holding `write:products`."""
    return is_admin(p) and p.has_scope("write:products")


def can_list_users(p: Principal) -> bool:
    """STAFF or ADMIN."""
    return is_staff(p)


def order_visible_to(p: Principal, customer_id: uuid.UUID | None) -> bool:
    """STAFF or ADMIN, or the customer who placed the order."""
    return is_staff(p) or _is_user(p, customer_id)
