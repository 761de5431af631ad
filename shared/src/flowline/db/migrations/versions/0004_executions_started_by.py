"""executions say who started them, apart from who owns them

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07 13:07:41.000000

``started_by`` held the principal an execution belongs to, which decides who may see it: a child copied its
parent's, and a Kafka submission had none. That column is now ``owned_by``, unchanged; ``started_by`` says who
started the execution (``api-key:<id>``, ``jwt:<sub>``, ``kafka``, ``parent:<execution id>``), and lists filter
on it. Existing rows get it from what they hold: a child its parent, an owner that is not an API key is a JWT's
subject, and an unowned execution triggered by Kafka came from a submission; any other (started before
principals were recorded) stays unknown. The index is built concurrently, like 0003's: a plain CREATE INDEX
would block every write to executions while it reads the whole table.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_executions_tenant_started_by_created"


def upgrade() -> None:
    op.alter_column("executions", "started_by", new_column_name="owned_by")
    op.add_column("executions", sa.Column("started_by", sa.Text(), nullable=True))
    op.execute(
        """
        UPDATE executions SET started_by = CASE
            WHEN parent_execution_id IS NOT NULL THEN 'parent:' || parent_execution_id
            WHEN owned_by LIKE 'api-key:%' THEN owned_by
            WHEN owned_by IS NOT NULL THEN 'jwt:' || owned_by
            WHEN triggered_by = 'kafka' THEN 'kafka'
        END
        """
    )
    with op.get_context().autocommit_block():
        op.create_index(
            INDEX, "executions", ["tenant_id", "started_by", "created_at", "id"], postgresql_concurrently=True
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index(INDEX, table_name="executions", postgresql_concurrently=True)
    op.drop_column("executions", "started_by")
    op.alter_column("executions", "owned_by", new_column_name="started_by")
