"""Webhooks: endpoints, the outbox of events, and deliveries (issue 16).

The three tables are tenant-owned: on PostgreSQL they get the same FORCEd row-level security
policy as the tables of 0002_tenant_rls (the grants to the application role come from the
default privileges 0002 set for the schema).

Revision ID: 0005_webhooks
Revises: 0004_tenant_parent_indexes
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_webhooks"
down_revision: str | Sequence[str] | None = "0004_tenant_parent_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen: the tenant-owned tables this revision adds (a test checks 0002 + 0005 = the models').
TENANT_OWNED = ("webhook_endpoints", "webhook_events", "webhook_deliveries")
POLICY = "tenant_isolation"
PREDICATE = "tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid"


def _timestamp(name: str, *, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _tenant_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id"], ["tenants.id"], name=f"fk_{table}_tenant_id_tenants"
    )


def upgrade() -> None:
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("topics", sa.String(length=400), nullable=False),
        sa.Column("secret", sa.String(length=100), nullable=False),
        sa.Column("previous_secret", sa.String(length=100), nullable=True),
        _timestamp("previous_secret_expires_at", nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("disabled_reason", sa.String(length=400), nullable=True),
        _timestamp("disabled_at", nullable=True),
        sa.Column("consecutive_failures", sa.Integer(), server_default="0", nullable=False),
        _timestamp("failing_since", nullable=True),
        _timestamp("created_at"),
        sa.CheckConstraint("status in ('ENABLED', 'DISABLED')", name="ck_webhook_endpoints_status"),
        _tenant_fk("webhook_endpoints"),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_endpoints"),
    )
    op.create_index(
        "ix_webhook_endpoints_tenant_created", "webhook_endpoints", ["tenant_id", "created_at", "id"]
    )
    op.create_table(
        "webhook_events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("topic", sa.String(length=40), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        _timestamp("occurred_at"),
        _tenant_fk("webhook_events"),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_events"),
    )
    op.create_index(
        "ix_webhook_events_tenant_occurred", "webhook_events", ["tenant_id", "occurred_at", "id"]
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("endpoint_id", sa.Uuid(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        _timestamp("next_attempt_at", nullable=True),
        sa.Column("claimed_by", sa.String(length=64), nullable=True),
        _timestamp("lease_until", nullable=True),
        sa.Column("last_response_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(length=400), nullable=True),
        _timestamp("created_at"),
        _timestamp("delivered_at", nullable=True),
        sa.CheckConstraint(
            "status in ('PENDING', 'DELIVERED', 'FAILED')", name="ck_webhook_deliveries_status"
        ),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["webhook_endpoints.id"],
            name="fk_webhook_deliveries_endpoint_id_webhook_endpoints",
        ),
        sa.ForeignKeyConstraint(
            ["event_id"], ["webhook_events.id"], name="fk_webhook_deliveries_event_id_webhook_events"
        ),
        _tenant_fk("webhook_deliveries"),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_deliveries"),
        sa.UniqueConstraint(
            "endpoint_id", "event_id", name="uq_webhook_deliveries_endpoint_event"
        ),
    )
    op.create_index(
        "ix_webhook_deliveries_tenant_due",
        "webhook_deliveries",
        ["tenant_id", "status", "next_attempt_at"],
    )
    op.create_index(
        "ix_webhook_deliveries_endpoint_created",
        "webhook_deliveries",
        ["endpoint_id", "created_at", "id"],
    )
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TENANT_OWNED:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY {POLICY} ON {table} USING ({PREDICATE}) WITH CHECK ({PREDICATE})"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in TENANT_OWNED:
            op.execute(f"DROP POLICY IF EXISTS {POLICY} ON {table}")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_events")
    op.drop_table("webhook_endpoints")
