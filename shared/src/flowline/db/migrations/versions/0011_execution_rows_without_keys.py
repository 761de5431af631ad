"""rows of an execution hang on it without foreign keys, and tenants have a default execution retention

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 19:10:00.000000

Up: the keys from steps, timers, promises and events to their execution and from attempts, timers and promises to
their step go (docs/architecture.md §6: the writers' lock order and the removal of whole trees keep those rows
with their execution). Each key cost a trigger call per row removed, about half of what retention spent, and a
lookup with a lock (FOR KEY SHARE) of the execution or step per row written. Dropping a key is a catalog change:
no row is read. The index on the promises' steps (0008) served only their key's cascade and goes too (a wait
step's promise is found by its execution first). ``tenants.retention_seconds`` (NULL: the server's
``FLOWLINE_EXECUTION_RETENTION``) is the retention of the tenant's workflows that set none of their own.

Down: the keys come back unchecked (``NOT VALID``: only a brief lock of each table) and are then validated
outside that transaction, which reads the rows without stopping writes; the promises' index is built concurrently
again; the tenants' retentions are dropped.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, column, referred table): each key as 0001 made it, ON DELETE CASCADE.
EXECUTION_ROW_KEYS = (
    ("step_executions", "execution_id", "executions"),
    ("timers", "execution_id", "executions"),
    ("promises", "execution_id", "executions"),
    ("execution_events", "execution_id", "executions"),
    ("task_attempts", "step_execution_id", "step_executions"),
    ("timers", "step_execution_id", "step_executions"),
    ("promises", "step_execution_id", "step_executions"),
)
PROMISE_STEP_INDEX = "ix_promises_step"


def _key_name(table: str, column: str, referred: str) -> str:
    return f"fk_{table}_{column}_{referred}"


def upgrade() -> None:
    for table, column, referred in EXECUTION_ROW_KEYS:
        op.drop_constraint(_key_name(table, column, referred), table, type_="foreignkey")
    op.add_column("tenants", sa.Column("retention_seconds", sa.BigInteger(), nullable=True))
    with op.get_context().autocommit_block():
        op.drop_index(PROMISE_STEP_INDEX, table_name="promises", postgresql_concurrently=True)


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.create_index(PROMISE_STEP_INDEX, "promises", ["step_execution_id"], postgresql_concurrently=True)
    op.drop_column("tenants", "retention_seconds")
    for table, column, referred in EXECUTION_ROW_KEYS:
        op.execute(
            f"ALTER TABLE {table} ADD CONSTRAINT {_key_name(table, column, referred)} FOREIGN KEY ({column}) "
            f"REFERENCES {referred} (id) ON DELETE CASCADE NOT VALID"
        )
    with op.get_context().autocommit_block():
        for table, column, referred in EXECUTION_ROW_KEYS:
            op.execute(f"ALTER TABLE {table} VALIDATE CONSTRAINT {_key_name(table, column, referred)}")
