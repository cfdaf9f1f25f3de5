"""The persisted-query registry's change counter (one row, bumped by every list change).

Every worker polls it at most twice a second and drops its local copy of the lists when it
moved, so registrations and retirements reach every running server within a second.

Revision ID: 0003_registry_version
Revises: 0002_tenant_rls
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_registry_version"
down_revision: str | Sequence[str] | None = "0002_tenant_rls"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "persisted_documents_version",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
    )
    op.execute("INSERT INTO persisted_documents_version (id, version) VALUES (1, 0)")


def downgrade() -> None:
    op.drop_table("persisted_documents_version")
