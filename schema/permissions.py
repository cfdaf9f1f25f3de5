"""Field permission classes: a denied field is null with a FORBIDDEN error, the rest stays."""

from __future__ import annotations

from typing import Any

from strawberry.permission import BasePermission
from strawberry.types import Info

from auth import policy


class _Forbidden(BasePermission):
    message = "You are not allowed to read this field."
    error_extensions = {"code": "FORBIDDEN"}


class CanReadEmail(_Forbidden):
    """``User.email``: the user themself, STAFF and ADMIN."""

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        return policy.can_read_user_email(info.context.principal, source.row.id)


class CanReadUnitCost(_Forbidden):
    """``Product.unitCost``: ADMIN only."""

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        return policy.can_read_unit_cost(info.context.principal)


class CanReadInternalNote(_Forbidden):
    """``Order.internalNote``: STAFF or ADMIN holding ``orders:internal``."""

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        return policy.can_read_internal_note(info.context.principal)
