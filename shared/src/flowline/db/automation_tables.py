"""The tables of what starts and tells on its own: schedules, and outbound webhooks with their deliveries."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

from flowline.db.columns import id_column, metadata, tenant_column, timestamp_column

# Cron and interval schedules (flowline.domain.schedules), fired by the scheduler (flowline_scheduler.schedules), which
# claims due rows by ``next_run_at`` with FOR UPDATE SKIP LOCKED. ``buffered_for`` is a run held back by the
# buffer_one overlap policy until the running one finishes.
schedules = Table(
    "schedules",
    metadata,
    id_column(),
    tenant_column(),
    Column("name", Text, nullable=False),
    Column("description", Text),
    Column("workflow_ref", Text, nullable=False),
    Column("workflow_version", Integer),
    Column("cron", Text),
    Column("interval_ms", BigInteger),
    Column("timezone", Text, nullable=False, server_default="UTC"),
    Column("input", JSONB, nullable=False, server_default="{}"),
    Column("overlap", Text, nullable=False, server_default="skip"),
    Column("catchup_window_ms", BigInteger, nullable=False, server_default=text("60000")),
    timestamp_column("start_at"),
    timestamp_column("end_at"),
    Column("paused", Boolean, nullable=False, server_default=text("false")),
    Column("metadata", JSONB, nullable=False, server_default="{}"),
    Column("tags", ARRAY(Text), nullable=False, server_default="{}"),
    Column("created_by", Text),
    timestamp_column("next_run_at"),
    timestamp_column("buffered_for"),
    timestamp_column("last_run_at"),
    Column("last_execution_id", UUID(as_uuid=True)),
    timestamp_column("created_at", nullable=False, default_now=True),
    timestamp_column("updated_at", nullable=False, default_now=True),
    UniqueConstraint("tenant_id", "name"),
    Index("ix_schedules_due", "next_run_at", postgresql_where=text("NOT paused")),
    Index("ix_schedules_buffered", "buffered_for", postgresql_where=text("buffered_for IS NOT NULL")),
)

# Outbound webhooks (flowline.domain.webhooks): who is told of which state events, and every delivery of one
# event to one webhook. Secrets are sealed with FLOWLINE_SECRET_KEY; during a rotation the previous one signs too,
# until it expires.
webhooks = Table(
    "webhooks",
    metadata,
    id_column(),
    tenant_column(),
    Column("url", Text, nullable=False),
    Column("events", ARRAY(Text), nullable=False),
    Column("workflows", ARRAY(Text)),  # workflow refs; null: every workflow
    Column("description", Text),
    Column("enabled", Boolean, nullable=False, server_default=text("true")),
    Column("disabled_reason", Text),
    Column("secret_sealed", Text, nullable=False),
    Column("previous_secret_sealed", Text),
    timestamp_column("previous_secret_expires_at"),
    # Since when every delivery failed (null after a success): a webhook failing long enough is disabled.
    timestamp_column("failing_since"),
    timestamp_column("created_at", nullable=False, default_now=True),
    timestamp_column("updated_at", nullable=False, default_now=True),
    Index("ix_webhooks_tenant_created", "tenant_id", "created_at", "id"),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    id_column(),
    Column("webhook_id", UUID(as_uuid=True), ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False),
    Column("tenant_id", UUID(as_uuid=True), nullable=False),
    Column("event_type", Text, nullable=False),
    # The event it is for (null for a webhook.test): one delivery per webhook and event, whatever redelivers it.
    Column("execution_id", UUID(as_uuid=True)),
    Column("sequence", BigInteger),
    Column("payload", JSONB, nullable=False),
    Column("status", Text, nullable=False, server_default="pending"),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("last_status_code", Integer),
    Column("last_error", Text),
    # When it is due: the next attempt, or while one is in flight, when that attempt is given up as lost.
    timestamp_column("next_attempt_at"),
    timestamp_column("event_at", nullable=False),
    timestamp_column("created_at", nullable=False, default_now=True),
    timestamp_column("delivered_at"),
    UniqueConstraint("webhook_id", "execution_id", "sequence"),
    Index("ix_webhook_deliveries_due", "next_attempt_at", postgresql_where=text("status = 'pending'")),
    Index("ix_webhook_deliveries_webhook_created", "webhook_id", "created_at", "id"),
    # What retention deletes: settled deliveries, oldest first.
    Index("ix_webhook_deliveries_settled", "created_at", postgresql_where=text("status <> 'pending'")),
    # A queue: vacuumed and analyzed after a few hundred changes (migration 0007 says why).
    postgresql_with={
        "autovacuum_vacuum_threshold": "500",
        "autovacuum_vacuum_scale_factor": "0.02",
        "autovacuum_analyze_threshold": "500",
        "autovacuum_analyze_scale_factor": "0.02",
    },
)

# One row: how far the webhook sweep has looked, the position of the last event it went past (occurred_at,
# execution_id, sequence); its lock keeps schedulers from sweeping the same window at once.
webhook_sweep = Table(
    "webhook_sweep",
    metadata,
    Column("id", Boolean, primary_key=True, server_default=text("true")),
    timestamp_column("swept_at", nullable=False),
    Column("swept_execution_id", UUID(as_uuid=True), nullable=False),
    Column("swept_sequence", BigInteger, nullable=False),
    CheckConstraint("id", name="single_row"),
)
