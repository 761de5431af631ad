"""cron and interval schedules, and the schedule runs among executions

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 16:05:00.000000

A ``schedules`` table; executions say which schedule started them and the logical time they stand for
(``schedule_id``, ``scheduled_for``); a backfill (a bulk operation) keeps its cursor in ``last_scheduled_for``.
The new executions index is built concurrently, like 0003's: a plain CREATE INDEX would block every write to
executions while it reads the whole table.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_executions_tenant_schedule_created"


def upgrade() -> None:
    op.create_table(
        "schedules",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("workflow_ref", sa.Text(), nullable=False),
        sa.Column("workflow_version", sa.Integer(), nullable=True),
        sa.Column("cron", sa.Text(), nullable=True),
        sa.Column("interval_ms", sa.BigInteger(), nullable=True),
        sa.Column("timezone", sa.Text(), server_default="UTC", nullable=False),
        sa.Column("input", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False),
        sa.Column("overlap", sa.Text(), server_default="skip", nullable=False),
        sa.Column("catchup_window_ms", sa.BigInteger(), server_default=sa.text("60000"), nullable=False),
        sa.Column("start_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("paused", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("metadata", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False),
        sa.Column("tags", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("created_by", sa.Text(), nullable=True),
        sa.Column("next_run_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("buffered_for", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_run_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_execution_id", sa.UUID(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_schedules_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schedules")),
        sa.UniqueConstraint("tenant_id", "name", name=op.f("uq_schedules_tenant_id_name")),
    )
    op.create_index("ix_schedules_due", "schedules", ["next_run_at"], postgresql_where=sa.text("NOT paused"))
    op.create_index(
        "ix_schedules_buffered", "schedules", ["buffered_for"], postgresql_where=sa.text("buffered_for IS NOT NULL")
    )
    op.add_column("executions", sa.Column("schedule_id", sa.UUID(), nullable=True))
    op.add_column("executions", sa.Column("scheduled_for", sa.DateTime(timezone=True), nullable=True))
    op.add_column("bulk_operations", sa.Column("last_scheduled_for", sa.DateTime(timezone=True), nullable=True))
    with op.get_context().autocommit_block():
        op.create_index(
            INDEX,
            "executions",
            ["tenant_id", "schedule_id", "created_at", "id"],
            postgresql_where=sa.text("schedule_id IS NOT NULL"),
            postgresql_concurrently=True,
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index(INDEX, table_name="executions", postgresql_concurrently=True)
    op.drop_column("bulk_operations", "last_scheduled_for")
    op.drop_column("executions", "scheduled_for")
    op.drop_column("executions", "schedule_id")
    op.drop_index("ix_schedules_buffered", table_name="schedules")
    op.drop_index("ix_schedules_due", table_name="schedules")
    op.drop_table("schedules")
