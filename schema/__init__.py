"""The Strawberry schema of the public contract (``../shared/contract/schema.graphql``)."""

from __future__ import annotations

import strawberry
from strawberry.schema.config import StrawberryConfig

from schema.root import Mutation, Query
from schema.scalars import SCALAR_MAP
from schema.types import Order, Product, Review, User


def build_schema() -> strawberry.Schema:
    """Build the schema (once per process; the server owns it)."""
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        types=[User, Product, Order, Review],
        config=StrawberryConfig(auto_camel_case=True, scalar_map=SCALAR_MAP),
    )


__all__ = ["build_schema"]
