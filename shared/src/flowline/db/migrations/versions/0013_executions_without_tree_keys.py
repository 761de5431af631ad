"""executions lose their keys to their parent and to the execution they rerun

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 21:50:00.000000

Up: the keys from ``executions.parent_execution_id`` and ``executions.rerun_of`` to ``executions`` go
(docs/architecture.md §6: a child is written under its parent's lock and removed with its tree; a rerun locks
its original while it is created, and the removal clears the link of the reruns that outlive their original).
Each key cost a trigger call per execution removed — the parent's two lookups, the rerun's an update — about a
quarter of a retention batch's time (docs/performance.md §7). Dropping a key is a catalog change: no row is read.

Down: the keys come back unchecked (``NOT VALID``: only a brief lock of the table) and are then validated outside
that transaction, which reads the rows without stopping writes. A rerun whose original was removed already has
``rerun_of`` cleared, so the rows meet the keys.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (name, column, what a removal of the referred execution does), each as 0001 and 0008 made it.
EXECUTION_KEYS = (
    ("fk_executions_parent_execution_id_executions", "parent_execution_id", "NO ACTION"),
    ("fk_executions_rerun_of_executions", "rerun_of", "SET NULL"),
)


def upgrade() -> None:
    for name, _column, _on_delete in EXECUTION_KEYS:
        op.drop_constraint(name, "executions", type_="foreignkey")


def downgrade() -> None:
    for name, column, on_delete in EXECUTION_KEYS:
        op.execute(
            f"ALTER TABLE executions ADD CONSTRAINT {name} FOREIGN KEY ({column}) REFERENCES executions (id) "
            f"ON DELETE {on_delete} NOT VALID"
        )
    with op.get_context().autocommit_block():
        for name, _column, _on_delete in EXECUTION_KEYS:
            op.execute(f"ALTER TABLE executions VALIDATE CONSTRAINT {name}")
