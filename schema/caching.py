"""Apollo's ``@cacheControl`` directive and its scope enum, printed in the SDL.

The response cache (``guards.cachecontrol``) reads them from the printed SDL; where they are
placed, and why, is in docs/caching.md.
"""

from __future__ import annotations

from enum import Enum

import strawberry
from strawberry.schema_directive import Location


@strawberry.enum(
    description="Who may reuse a cached response: every caller with the same view, or one caller."
)
class CacheControlScope(Enum):
    PUBLIC = "PUBLIC"
    PRIVATE = "PRIVATE"


@strawberry.schema_directive(
    name="cacheControl",
    locations=[Location.FIELD_DEFINITION, Location.OBJECT, Location.INTERFACE, Location.UNION],
)
class CacheControl:
    """How long a field or type may be served from the response cache, and to whom."""

    max_age: int | None = strawberry.UNSET
    scope: CacheControlScope | None = strawberry.UNSET
    inherit_max_age: bool | None = strawberry.UNSET


PRIVATE = CacheControlScope.PRIVATE
INHERIT = CacheControl(inherit_max_age=True)
"""For value types (Money, PageInfo, connections, edges): as long-lived as their parent."""

__all__ = ["INHERIT", "PRIVATE", "CacheControl", "CacheControlScope"]
