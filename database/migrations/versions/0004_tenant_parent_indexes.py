"""Tenant-first indexes for the per-parent reads the loaders batch.

Every loader statement filters on ``tenant_id`` and then on a list of parent ids (``WHERE
tenant_id = ? AND order_id IN (...) ORDER BY order_id, position``). With only the
single-column ``tenant_id`` index and a parent index beside it, SQLite without statistics
(a fresh or freshly seeded database) chose the ``tenant_id`` index, read every item of the
tenant and sorted them: 6.8 ms for the 20 orders of one OrdersPage instead of 0.2 ms. An
index on (tenant_id, parent, sort...) serves the filter, the IN list and the order at once
on both SQLite and PostgreSQL, whatever the statistics say.

The single-column ``tenant_id`` indexes go: each is the prefix of a composite index of its
table, and SQLite preferred them to the primary key for ``tenant_id = ? AND id IN (...)``
(the by-id loaders), scanning every user or product of the tenant.

Revision ID: 0004_tenant_parent_indexes
Revises: 0003_registry_version
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004_tenant_parent_indexes"
down_revision: str | Sequence[str] | None = "0003_registry_version"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = (
    ("ix_order_items_tenant_order", "order_items", ["tenant_id", "order_id", "position"]),
    ("ix_orders_tenant_customer", "orders", ["tenant_id", "customer_id", "created_at", "id"]),
    ("ix_reviews_tenant_product", "reviews", ["tenant_id", "product_id", "created_at", "id"]),
    ("ix_reviews_tenant_author", "reviews", ["tenant_id", "author_id", "created_at", "id"]),
)
TENANT_ONLY = ("users", "products", "orders", "order_items", "reviews")


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)
    for table in TENANT_ONLY:
        op.drop_index(f"ix_{table}_tenant_id", table_name=table)


def downgrade() -> None:
    for table in TENANT_ONLY:
        op.create_index(f"ix_{table}_tenant_id", table, ["tenant_id"])
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
