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
    the same one): the permission exists once. A new permission: give the declaration a
    ``permission`` and its Strawberry field a subclass of this naming it."""

    field: fields.ReadField

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        # An object type's source keeps its row; a root field's source is the root value.
        return self.field.allowed(info.context, getattr(source, "row", source))


class CanReadEmail(_Declared):
    """``User.email``: the user themself, STAFF and ADMIN."""

    field = fields.USER_EMAIL


class CanReadUnitCost(_Declared):
    """``Product.unitCost``: ADMIN only."""

    field = fields.PRODUCT_UNIT_COST


class CanReadInternalNote(_Declared):
    """``Order.internalNote``: STAFF or ADMIN holding ``orders:internal``."""

    field = fields.ORDER_INTERNAL_NOTE
