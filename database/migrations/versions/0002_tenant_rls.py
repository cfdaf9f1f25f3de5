"""Row-level security on PostgreSQL: tenant isolation enforced by the database itself.

Every tenant-owned table admits only rows whose ``tenant_id`` equals the transaction's
``app.tenant_id`` setting (set by ``database.engine.tenant_transaction``); with the setting
empty or unset, no row is visible or writable. RLS is FORCEd so it also binds the tables'
owner, and the application connects as a dedicated login role (default ``tollgate_app``,
``NOSUPERUSER NOBYPASSRLS``) that is created here when missing. Superusers still bypass RLS:
the migrating (owner) role is one in development, which is how the seed and admin tools
work. SQLite has no RLS; this revision does nothing there.

Revision ID: 0002_tenant_rls
Revises: 0001_initial
Create Date: 2026-11-23
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from alembic import context, op

revision: str = "0002_tenant_rls"
down_revision: str | Sequence[str] | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copy of database.models.TENANT_OWNED as of this revision (a test checks they agree).
TENANT_OWNED = ("users", "products", "orders", "order_items", "reviews", "idempotency_records")
POLICY = "tenant_isolation"
PREDICATE = "tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid"
DEFAULT_APP_ROLE = "tollgate_app"
PRIVILEGES = "SELECT, INSERT, UPDATE, DELETE"


def _app_role() -> str:
    config = op.get_context().config
    role = (config.attributes.get("app_role") if config is not None else None) or (
        context.get_x_argument(as_dictionary=True).get("app_role") or DEFAULT_APP_ROLE
    )
    # Interpolated into DDL (identifiers cannot be bound), so only plain names are accepted.
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", role):
        raise ValueError(f"invalid app role name {role!r}")
    return role


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    role = _app_role()
    # CREATE ROLE is cluster-wide and has no IF NOT EXISTS; concurrent migrations of other
    # databases may race to create it, hence the exception handler.
    op.execute(
        f"""
        DO $$
        BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN
                BEGIN
                    CREATE ROLE "{role}" LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
                EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
                END;
            END IF;
            IF EXISTS (
                SELECT FROM pg_roles
                WHERE rolname = '{role}' AND (rolsuper OR rolbypassrls)
            ) THEN
                RAISE EXCEPTION 'role % bypasses row-level security', '{role}';
            END IF;
            EXECUTE format('GRANT USAGE ON SCHEMA %I TO "{role}"', current_schema());
            EXECUTE format(
                'GRANT {PRIVILEGES} ON ALL TABLES IN SCHEMA %I TO "{role}"', current_schema()
            );
            EXECUTE format(
                'ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT {PRIVILEGES} ON TABLES TO "{role}"',
                current_schema()
            );
        END
        $$;
        """
    )
    # The application may read its schema version (readiness checks) but never change it.
    op.execute(f'REVOKE INSERT, UPDATE, DELETE ON alembic_version FROM "{role}"')
    for table in TENANT_OWNED:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY {POLICY} ON {table} USING ({PREDICATE}) WITH CHECK ({PREDICATE})"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    role = _app_role()
    for table in TENANT_OWNED:
        op.execute(f"DROP POLICY IF EXISTS {POLICY} ON {table}")
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
    # The role itself stays: it is cluster-wide and other databases may use it.
    op.execute(
        f"""
        DO $$
        BEGIN
            IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN
                EXECUTE format(
                    'ALTER DEFAULT PRIVILEGES IN SCHEMA %I REVOKE {PRIVILEGES} ON TABLES FROM "{role}"',
                    current_schema()
                );
                EXECUTE format(
                    'REVOKE ALL ON ALL TABLES IN SCHEMA %I FROM "{role}"', current_schema()
                );
                EXECUTE format('REVOKE USAGE ON SCHEMA %I FROM "{role}"', current_schema());
            END IF;
        END
        $$;
        """
    )
