"""Privacy fields (ADMIN with the scope ``privacy:admin``): export and erase a user's data."""

from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry.types import Info

from resolvers import privacy
from schema.directives import Cost
from schema.types import UserError, user_errors

# Reading every order, item, review and record of a user is about as heavy as a mutation.
EXPORT_WEIGHT = 10


@strawberry.input(description="Whose personal data to erase.")
class PrivacyEraseInput:
    user_id: strawberry.ID = strawberry.field(
        description="Global id of a user of the caller's tenant."
    )


@strawberry.type(description="The result of privacyErase.")
class PrivacyErasePayload:
    erased: bool = strawberry.field(
        description=(
            "True when this call anonymised something; false when nothing was left to erase "
            "(a repeat) or on userErrors."
        )
    )
    user_errors: list[UserError] = strawberry.field(
        description="NOT_FOUND for a user not in your tenant; INVALID_INPUT for a bad id."
    )


@strawberry.type(description="Privacy queries.")
class PrivacyQuery:
    @strawberry.field(
        description=(
            "ADMIN; scope privacy:admin. Everything held about a user of your tenant, as a JSON "
            "document (format tollgate.privacy-export/1). Another tenant's user is NOT_FOUND."
        ),
        directives=[Cost(weight=EXPORT_WEIGHT)],
    )
    async def privacy_export(
        self,
        info: Info,
        user_id: Annotated[
            strawberry.ID, strawberry.argument(description="Global id of the user.")
        ],
    ) -> str:
        return await privacy.export_for(info.context, user_id)


@strawberry.type(description="Privacy mutations.")
class PrivacyMutation:
    @strawberry.mutation(
        description=(
            "ADMIN; scope privacy:admin. Anonymises a user of your tenant in one transaction: "
            "name and email, order notes and internal notes, review bodies; orders are kept, "
            "idempotency records deleted. Idempotent."
        )
    )
    async def privacy_erase(self, info: Info, input: PrivacyEraseInput) -> PrivacyErasePayload:
        outcome = await privacy.erase_for(info.context, input.user_id)
        return PrivacyErasePayload(
            erased=outcome.erased,
            user_errors=user_errors(outcome.errors),
        )


__all__ = ["PrivacyEraseInput", "PrivacyErasePayload", "PrivacyMutation", "PrivacyQuery"]
