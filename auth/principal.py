"""Who is calling: roles, default scopes and the immutable `Principal`."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["ANONYMOUS_SUBJECT", "ANONYMOUS_TIER", "ROLE_SCOPES", "Principal", "Role"]

ANONYMOUS_SUBJECT = "anonymous"
ANONYMOUS_TIER = "anonymous"


class Role(StrEnum):
    """The demo roles; a token's `role` claim must be one of these values."""

    CUSTOMER = "CUSTOMER"
    STAFF = "STAFF"
    ADMIN = "ADMIN"


# Every role's default token reads all three named types (policy.READ_SCOPES), so the role
# rules alone decide what it sees; a narrower token lists fewer `read:*` scopes.
_CUSTOMER_SCOPES = frozenset({"read:orders", "read:products", "read:users", "write:orders"})
_STAFF_SCOPES = _CUSTOMER_SCOPES | {"orders:internal", "graphql:introspect", "graphql:adhoc"}
_ADMIN_SCOPES = _STAFF_SCOPES | {"write:products", "privacy:admin", "pq:admin", "write:webhooks"}

ROLE_SCOPES: dict[Role, frozenset[str]] = {
    Role.CUSTOMER: _CUSTOMER_SCOPES,
    Role.STAFF: _STAFF_SCOPES,
    Role.ADMIN: _ADMIN_SCOPES,
}


@dataclass(frozen=True, slots=True)
class Principal:
    """The verified identity of one request (or an explicit anonymous caller)."""

    subject: str
    tenant_id: uuid.UUID | None
    role: Role | None
    scopes: frozenset[str]
    tier: str = "default"
    client_ip: str | None = None
    anonymous: bool = False

    @property
    def user_id(self) -> uuid.UUID | None:
        """The subject as a user UUID; None for anonymous callers and non-UUID subjects."""
        if self.anonymous:
            return None
        try:
            parsed = uuid.UUID(self.subject)
        except (ValueError, AttributeError, TypeError):
            return None
        # uuid.UUID also accepts "{...}", "urn:uuid:..." and unhyphenated hex; only the
        # canonical spelling names a user, so one user never has two subject strings.
        if str(parsed) != self.subject.lower():
            return None
        return parsed

    def has_scope(self, scope: str) -> bool:
        """Whether the principal was granted `scope`."""
        return scope in self.scopes

    @classmethod
    def anonymous_principal(cls, client_ip: str | None) -> Principal:
        """An unauthenticated caller: no tenant, no role, no scopes, rate-limited by IP."""
        return cls(
            subject=ANONYMOUS_SUBJECT,
            tenant_id=None,
            role=None,
            scopes=frozenset(),
            tier=ANONYMOUS_TIER,
            client_ip=client_ip,
            anonymous=True,
        )
