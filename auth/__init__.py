"""Authentication and authorization for Tollgate, free of any web or GraphQL framework.

- `principal`: `Role`, `ROLE_SCOPES` (default scopes per demo role) and the frozen
  `Principal` (subject, tenant, role, scopes, rate-limit tier, client IP, anonymous flag).
- `tokens`: `JWTSettings` (validated at construction: a pinned algorithm list of ONE family,
  HS* with a >=32-byte secret, or RS*/PS*/ES*/EdDSA with a PEM public key or a JWKS file),
  `TokenVerifier.verify(token) -> Principal` (required `exp iss aud sub tenant`, honoured
  `nbf`/`iat` with leeway, `role` a valid `Role`, `scope` space-separated, optional `tier`),
  `mint_token(...)` for the dev CLI and tests, and `parse_bearer(header)`. Every rejection
  is an `AuthError` whose `reason` is short and never contains the token.
- `policy`: pure predicates (`is_staff`, `can_read_user_email`, `order_visible_to`, ...).
  Tenant isolation is enforced in SQL by the callers, not here.

Typical use by the HTTP layer::

    verifier = TokenVerifier(JWTSettings(secret=secret))  # once, at startup
    token = parse_bearer(request.headers.get("authorization"))
    principal = (
        Principal.anonymous_principal(client_ip)
        if token is None
        else verifier.verify(token, client_ip=client_ip)
    )  # AuthError -> 401 UNAUTHENTICATED, never anonymous access
"""

from __future__ import annotations

from auth.policy import (
    READ_SCOPES,
    can_introspect,
    can_list_users,
    can_manage_products,
    can_read,
    can_read_internal_note,
    can_read_metrics,
    can_read_unit_cost,
    can_read_user_email,
    can_run_adhoc,
    can_write_orders,
    is_admin,
    is_staff,
    order_visible_to,
)
from auth.principal import ROLE_SCOPES, Principal, Role
from auth.tokens import AuthError, JWTSettings, TokenVerifier, mint_token, parse_bearer

__all__ = [
    "READ_SCOPES",
    "ROLE_SCOPES",
    "AuthError",
    "JWTSettings",
    "Principal",
    "Role",
    "TokenVerifier",
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
    "mint_token",
    "order_visible_to",
    "parse_bearer",
]
