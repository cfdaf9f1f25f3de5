"""Field permission classes: a denied field is null with a FORBIDDEN error, the rest stays."""

from __future__ import annotations

from typing import Any

from strawberry.permission import BasePermission
from strawberry.types import Info

from schema import fields


class _Forbidden(BasePermission):
    message = "You are not allowed to read this field."
    error_extensions = {"code": "FORBIDDEN"}


class _Declared(_Forbidden):
    """Asks the field's declaration in ``schema.fields`` (the batched executor's guard asks
    the same one): the permission exists once."""

    field: fields.ReadField

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        return self.field.allowed(info.context, source.row)


class CanReadEmail(_Declared):
    """``User.email``: the user themself, STAFF and ADMIN."""

    field = fields.USER_EMAIL


class CanReadUnitCost(_Declared):
    """``Product.unitCost``: ADMIN only."""

    field = fields.PRODUCT_UNIT_COST


class CanReadInternalNote(_Declared):
    """``Order.internalNote``: STAFF or ADMIN holding ``orders:internal``."""

    field = fields.ORDER_INTERNAL_NOTE
