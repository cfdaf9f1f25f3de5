"""The IBM cost directives, printed in the SDL and read by the cost engine in ``guards/``."""

from __future__ import annotations

import strawberry
from strawberry.schema_directive import Location


@strawberry.schema_directive(
    name="cost",
    locations=[
        Location.ARGUMENT_DEFINITION,
        Location.ENUM,
        Location.FIELD_DEFINITION,
        Location.INPUT_FIELD_DEFINITION,
        Location.OBJECT,
        Location.SCALAR,
    ],
)
class Cost:
    """Weight of a field, type or argument (default: objects 1, scalars and enums 0)."""

    weight: int


@strawberry.schema_directive(name="listSize", locations=[Location.FIELD_DEFINITION])
class ListSize:
    """How many items a list field returns: a slicing argument's value, or an assumed size."""

    assumed_size: int | None = strawberry.UNSET
    slicing_arguments: list[str] | None = strawberry.UNSET
    sized_fields: list[str] | None = strawberry.UNSET
    require_one_slicing_argument: bool | None = True


PAGE = ListSize(slicing_arguments=["first"], sized_fields=["edges", "nodes"])
