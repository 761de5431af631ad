"""retention: workflows keep their executions for a while, and the indexes that find and remove them

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 16:10:00.000000

``workflows.retention_seconds`` overrides the server's execution retention (NULL: the default). The retention
loop finds each workflow's finished roots by finish time, a root's descendants, the reruns linked to an execution
and the oldest audit rows through new indexes; removing a step removes its promise, which needs an index on the
promise's step. A rerun's link to its original is cleared when the original is removed (it was a plain key,
which refused the removal). The indexes are built concurrently, like 0003's, and the key is added unchecked and
then validated, so that no write to executions waits while the table is read.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RERUN_KEY = "fk_executions_rerun_of_executions"
FINISHED = "status IN ('completed', 'failed', 'cancelled')"
INDEXES = (
    (
        "ix_executions_finished_roots",
        "executions",
        ["workflow_id", "completed_at", "id"],
        f"parent_execution_id IS NULL AND {FINISHED}",
    ),
    ("ix_executions_root", "executions", ["root_execution_id"], "parent_execution_id IS NOT NULL"),
    ("ix_executions_rerun_of", "executions", ["rerun_of"], "rerun_of IS NOT NULL"),
    ("ix_promises_step", "promises", ["step_execution_id"], None),
    ("ix_audit_logs_occurred", "audit_logs", ["occurred_at"], None),
)


def _replace_rerun_key(ondelete: str | None) -> None:
    """The rerun key again with ``ondelete``, unchecked: the drop's lock on executions ends with this transaction."""
    op.drop_constraint(RERUN_KEY, "executions", type_="foreignkey")
    action = f" ON DELETE {ondelete}" if ondelete else ""
    op.execute(
        f"ALTER TABLE executions ADD CONSTRAINT {RERUN_KEY} FOREIGN KEY (rerun_of) REFERENCES executions (id)"
        f"{action} NOT VALID"
    )


def _validate_rerun_key() -> None:
    """Check the existing rows against the key, outside the transaction that took the table's lock to replace it."""
    op.execute(f"ALTER TABLE executions VALIDATE CONSTRAINT {RERUN_KEY}")


def upgrade() -> None:
    op.add_column("workflows", sa.Column("retention_seconds", sa.BigInteger(), nullable=True))
    _replace_rerun_key("SET NULL")
    with op.get_context().autocommit_block():
        _validate_rerun_key()
        for name, table, columns, where in INDEXES:
            op.create_index(
                name,
                table,
                columns,
                postgresql_where=sa.text(where) if where else None,
                postgresql_concurrently=True,
            )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        for name, table, _, _ in INDEXES:
            op.drop_index(name, table_name=table, postgresql_concurrently=True)
    _replace_rerun_key(None)
    with op.get_context().autocommit_block():
        _validate_rerun_key()
    op.drop_column("workflows", "retention_seconds")
