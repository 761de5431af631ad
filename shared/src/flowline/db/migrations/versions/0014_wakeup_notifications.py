"""triggers that NOTIFY the scheduler when its work is added or comes due sooner

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 22:00:00.000000

Up: one trigger function, ``flowline_notify()``, sends ``pg_notify`` on the channel its trigger names
(``flowline.db.notifications``), and triggers on ``schedules``, ``webhooks``, ``webhook_deliveries`` and
``bulk_operations`` call it for the changes that add work or bring it sooner; the scheduler's loops sleep until
then (or their fallback) instead of polling. Row triggers whose ``WHEN`` is false cost a comparison; the rest
send one notification per statement or per changed row, folded into one per transaction by PostgreSQL.

Down: the triggers and the function go; no data lives in them.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, trigger, timing and level, channel)
TRIGGERS = (
    (
        "schedules",
        "schedules_added_notify",
        "AFTER INSERT ON schedules FOR EACH ROW WHEN (NOT NEW.paused AND NEW.next_run_at IS NOT NULL)",
        "flowline_schedules",
    ),
    (
        "schedules",
        "schedules_sooner_notify",
        "AFTER UPDATE OF next_run_at, paused ON schedules FOR EACH ROW WHEN (NOT NEW.paused "
        "AND NEW.next_run_at IS NOT NULL AND (OLD.paused OR OLD.next_run_at IS NULL "
        "OR NEW.next_run_at < OLD.next_run_at))",
        "flowline_schedules",
    ),
    (
        "webhooks",
        "webhooks_added_removed_notify",
        "AFTER INSERT OR DELETE ON webhooks FOR EACH STATEMENT",
        "flowline_webhooks",
    ),
    (
        "webhooks",
        "webhooks_enabled_notify",
        "AFTER UPDATE OF enabled ON webhooks FOR EACH ROW WHEN (OLD.enabled IS DISTINCT FROM NEW.enabled)",
        "flowline_webhooks",
    ),
    (
        "webhook_deliveries",
        "webhook_deliveries_added_notify",
        "AFTER INSERT ON webhook_deliveries FOR EACH STATEMENT",
        "flowline_webhook_deliveries",
    ),
    (
        "webhook_deliveries",
        "webhook_deliveries_sooner_notify",
        "AFTER UPDATE OF next_attempt_at ON webhook_deliveries FOR EACH ROW WHEN (NEW.status = 'pending' "
        "AND NEW.next_attempt_at IS NOT NULL AND (OLD.next_attempt_at IS NULL "
        "OR NEW.next_attempt_at < OLD.next_attempt_at))",
        "flowline_webhook_deliveries",
    ),
    (
        "bulk_operations",
        "bulk_operations_added_notify",
        "AFTER INSERT ON bulk_operations FOR EACH STATEMENT",
        "flowline_bulk_operations",
    ),
)


def upgrade() -> None:
    op.execute(
        "CREATE FUNCTION flowline_notify() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN PERFORM pg_notify(TG_ARGV[0], ''); RETURN NULL; END $$"
    )
    for _, trigger, when, channel in TRIGGERS:
        op.execute(f"CREATE TRIGGER {trigger} {when} EXECUTE FUNCTION flowline_notify('{channel}')")


def downgrade() -> None:
    for table, trigger, _, _ in TRIGGERS:
        op.execute(f"DROP TRIGGER {trigger} ON {table}")
    op.execute("DROP FUNCTION flowline_notify()")
