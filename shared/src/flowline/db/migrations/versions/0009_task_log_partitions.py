"""task logs partitioned by day, and what each task has stored of its log

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 16:20:00.000000

Up: the table as it stands becomes the first partition, ``task_logs_until_<day>``, holding every record before
the day after the migration (or after its newest record): attaching it scans it once to check that range and
builds its key on (id, timestamp), but copies no row. A default partition and the next days' partitions follow;
the scheduler creates the later ones. ``task_log_usage`` starts with what the unfinished executions' tasks stored.

Down: every record is copied back into one plain table keyed by id.
"""

from collections.abc import Sequence
from datetime import date, timedelta

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = """
    id uuid NOT NULL,
    tenant_id uuid NOT NULL,
    execution_id uuid NOT NULL,
    task_id uuid,
    step_id text,
    attempt integer,
    level text NOT NULL,
    message text NOT NULL,
    timestamp timestamptz NOT NULL,
    metadata jsonb
"""
DAYS_AHEAD = 3


def _bound(day: date) -> str:
    return f"'{day.isoformat()} 00:00:00+00'"


def upgrade() -> None:
    first_new_day: date = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT (greatest(date_trunc('day', now() AT TIME ZONE 'UTC'), coalesce(date_trunc('day', "
                "max(timestamp) AT TIME ZONE 'UTC'), '-infinity')) + interval '1 day')::date FROM task_logs"
            )
        )
        .scalar_one()
    )
    legacy = f"task_logs_until_{first_new_day:%Y%m%d}"
    op.execute(f"ALTER TABLE task_logs RENAME TO {legacy}")
    op.execute(f"ALTER TABLE {legacy} DROP CONSTRAINT pk_task_logs")
    op.execute(f"ALTER INDEX ix_task_logs_task RENAME TO ix_{legacy}_task")
    op.execute(f"ALTER INDEX ix_task_logs_execution RENAME TO ix_{legacy}_execution")
    op.execute(
        f"CREATE TABLE task_logs ({COLUMNS}, CONSTRAINT pk_task_logs PRIMARY KEY (id, timestamp)) "
        "PARTITION BY RANGE (timestamp)"
    )
    op.create_index("ix_task_logs_task", "task_logs", ["task_id", "timestamp"], unique=False)
    op.create_index("ix_task_logs_execution", "task_logs", ["execution_id", "timestamp"], unique=False)
    # The old table's indexes match the new ones and are taken over as they are.
    op.execute(
        f"ALTER TABLE task_logs ATTACH PARTITION {legacy} FOR VALUES FROM (MINVALUE) TO ({_bound(first_new_day)})"
    )
    op.execute("CREATE TABLE task_logs_default PARTITION OF task_logs DEFAULT")
    for offset in range(DAYS_AHEAD):
        day = first_new_day + timedelta(days=offset)
        op.execute(
            f"CREATE TABLE task_logs_p{day:%Y%m%d} PARTITION OF task_logs "
            f"FOR VALUES FROM ({_bound(day)}) TO ({_bound(day + timedelta(days=1))})"
        )
    op.create_table(
        "task_log_usage",
        sa.Column("task_key", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("execution_id", sa.UUID(), nullable=False),
        sa.Column("records", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("bytes", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("dropped", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("notice_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("task_key", name=op.f("pk_task_log_usage")),
    )
    op.create_index("ix_task_log_usage_execution", "task_log_usage", ["execution_id"], unique=False)
    # Finished tasks log no more; the unfinished ones carry on from what they stored.
    op.execute(
        """
        INSERT INTO task_log_usage (task_key, tenant_id, execution_id, records, bytes, last_at)
        SELECT coalesce(l.task_id, l.execution_id), l.tenant_id, l.execution_id, count(*), sum(octet_length(l.message)),
            max(l.timestamp)
        FROM task_logs l JOIN executions e ON e.id = l.execution_id
        WHERE e.status IN ('pending', 'running', 'paused')
        GROUP BY 1, 2, 3
        """
    )


def downgrade() -> None:
    op.drop_index("ix_task_log_usage_execution", table_name="task_log_usage")
    op.drop_table("task_log_usage")
    op.execute(
        f"CREATE TABLE task_logs_unpartitioned ({COLUMNS}, CONSTRAINT pk_task_logs_unpartitioned PRIMARY KEY (id))"
    )
    op.execute("INSERT INTO task_logs_unpartitioned SELECT * FROM task_logs ON CONFLICT (id) DO NOTHING")
    op.execute("DROP TABLE task_logs")
    op.execute("ALTER TABLE task_logs_unpartitioned RENAME TO task_logs")
    op.execute("ALTER TABLE task_logs RENAME CONSTRAINT pk_task_logs_unpartitioned TO pk_task_logs")
    op.create_index("ix_task_logs_execution", "task_logs", ["execution_id", "timestamp"], unique=False)
    op.create_index("ix_task_logs_task", "task_logs", ["task_id", "timestamp"], unique=False)
