"""rows of an execution keep their tenant without a foreign key

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 19:05:00.000000

The execution references its tenant; its steps, attempts, timers, promises and events reached the tenant a
second time, and each of their rows written checked that key and locked the tenant's one row to do it.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EXECUTION_ROWS = ("step_executions", "task_attempts", "timers", "promises", "execution_events")


def upgrade() -> None:
    for table in EXECUTION_ROWS:
        op.drop_constraint(f"fk_{table}_tenant_id_tenants", table, type_="foreignkey")


def downgrade() -> None:
    for table in EXECUTION_ROWS:
        op.create_foreign_key(
            f"fk_{table}_tenant_id_tenants", table, "tenants", ["tenant_id"], ["id"], ondelete="CASCADE"
        )
