"""task attempts keep the input they ran with and their output

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 19:00:00.000000

Up: ``task_attempts`` gains ``input`` and ``output`` (jsonb, NULL for none). Attempts that ran before know
only what their step stored: each step's latest attempt takes the step's input, and its output when that
attempt completed; earlier attempts stay NULL (what they ran with was not kept).

Down: the two columns go; the steps still hold their latest input and output, as before the upgrade.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("task_attempts", sa.Column("input", JSONB(), nullable=True))
    op.add_column("task_attempts", sa.Column("output", JSONB(), nullable=True))
    op.execute(
        "UPDATE task_attempts a SET input = s.input, "
        "output = CASE WHEN a.status = 'completed' THEN s.output END "
        "FROM step_executions s "
        "WHERE s.id = a.step_execution_id AND a.generation = s.generation AND a.number = s.attempts"
    )


def downgrade() -> None:
    op.drop_column("task_attempts", "output")
    op.drop_column("task_attempts", "input")
