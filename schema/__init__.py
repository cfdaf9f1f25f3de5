"""The Strawberry schema of the public contract (``../shared/contract/schema.graphql``)."""

from __future__ import annotations

import strawberry
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types

from schema import root
from schema.privacy import PrivacyMutation, PrivacyQuery
from schema.scalars import SCALAR_MAP
from schema.types import Order, Product, Review, User
from schema.webhooks import WebhookMutation, WebhookQuery


def _merge(name: str, *types: type) -> type:
    """One root type from per-domain ones, keeping the first one's description."""
    merged = merge_types(name, types)
    merged.__strawberry_definition__.description = (  # type: ignore[attr-defined]
        types[0].__strawberry_definition__.description  # type: ignore[attr-defined]
    )
    return merged


# Per-domain roots, merged like a table of contents; the names stay Query and Mutation.
Query = _merge("Query", root.Query, PrivacyQuery, WebhookQuery)
Mutation = _merge("Mutation", root.Mutation, PrivacyMutation, WebhookMutation)


def build_schema() -> strawberry.Schema:
    """Build the schema (once per process; the server owns it)."""
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        types=[User, Product, Order, Review],
        config=StrawberryConfig(auto_camel_case=True, scalar_map=SCALAR_MAP),
    )


__all__ = ["build_schema"]
