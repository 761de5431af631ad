"""the webhook sweep's cursor, and a BRIN index on when execution events occurred

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 20:20:00.000000

Up: ``webhook_sweep`` holds one row, how far the scheduler's sweep has looked for events without their
deliveries (docs/architecture.md, webhooks), starting at the upgrade. ``execution_events`` gains a BRIN index on
``occurred_at``: its rows are written in about that order, so a few pages' ranges find the sweep's window, and
an insert costs next to nothing (a btree would add a write to every event, on the busiest table).

Down: both go; no data of anyone's lives in them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "webhook_sweep",
        sa.Column("id", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("swept_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("swept_execution_id", sa.UUID(), nullable=False),
        sa.Column("swept_sequence", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("id", name=op.f("ck_webhook_sweep_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_sweep")),
    )
    op.execute(
        "INSERT INTO webhook_sweep (swept_at, swept_execution_id, swept_sequence) "
        "VALUES (now(), '00000000-0000-0000-0000-000000000000', -1)"
    )
    op.create_index(
        "ix_execution_events_occurred_at",
        "execution_events",
        ["occurred_at"],
        unique=False,
        postgresql_using="brin",
        postgresql_with={"autosummarize": "on"},
    )


def downgrade() -> None:
    op.drop_index("ix_execution_events_occurred_at", table_name="execution_events", postgresql_using="brin")
    op.drop_table("webhook_sweep")
