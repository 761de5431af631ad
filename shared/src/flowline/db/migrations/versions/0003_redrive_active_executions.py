"""indexes on the active executions, for the redrive

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 20:10:00.000000

The redrive looked for running executions and active children by scanning every execution ever run. Built
concurrently: a plain CREATE INDEX would block every write to executions while it reads the whole table.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = (
    ("ix_executions_running", ["id"], "status = 'running'"),
    (
        "ix_executions_active_children",
        ["parent_execution_id"],
        "status IN ('pending', 'running', 'paused') AND parent_execution_id IS NOT NULL",
    ),
)


def upgrade() -> None:
    with op.get_context().autocommit_block():
        for name, columns, where in INDEXES:
            op.create_index(name, "executions", columns, postgresql_where=sa.text(where), postgresql_concurrently=True)


def downgrade() -> None:
    with op.get_context().autocommit_block():
        for name, _, _ in INDEXES:
            op.drop_index(name, table_name="executions", postgresql_concurrently=True)
