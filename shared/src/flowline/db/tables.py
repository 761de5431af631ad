"""The data model (docs/architecture.md §6) as SQLAlchemy 2 tables: migrations derive from them; queries use asyncpg."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)


def _id() -> Column[object]:
    return Column("id", UUID(as_uuid=True), primary_key=True)


def _tenant() -> Column[object]:
    return Column("tenant_id", UUID(as_uuid=True), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False)


def _execution_tenant() -> Column[object]:
    """The tenant of a row that belongs to an execution, copied from it for reads by tenant: no foreign key.

    The execution ties the row to its tenant, so a key here would check again, for every row written, what the
    execution's own key checked; and each check locks the tenant's single row (FOR KEY SHARE), which every
    concurrent writer of every execution then shares: a dozen rows per execution on the hot path.
    """
    return Column("tenant_id", UUID(as_uuid=True), nullable=False)


def _execution() -> Column[object]:
    """The execution a row (step, attempt, timer, promise, event) belongs to: no foreign key (docs/architecture.md §6).

    Such rows are written only by a transaction that holds their execution's row lock, and removed with it, whole
    tree by whole tree (flowline.domain.removal); a key would check each row written (locking the execution) and
    cost a trigger call per row removed, half of what retention spent.
    """
    return Column("execution_id", UUID(as_uuid=True), nullable=False)


def _timestamp(name: str, *, nullable: bool = True, default_now: bool = False) -> Column[object]:
    return Column(
        name,
        DateTime(timezone=True),
        nullable=nullable,
        server_default=text("now()") if default_now else None,
    )


NOT_DELETED = text("deleted_at IS NULL")

tenants = Table(
    "tenants",
    metadata,
    _id(),
    Column("slug", Text, nullable=False, unique=True),
    Column("name", Text, nullable=False),
    # How long the executions of its workflows that set no retention of their own are kept once their root
    # finished (flowline.db.retention); NULL: the server's FLOWLINE_EXECUTION_RETENTION.
    Column("retention_seconds", BigInteger),
    _timestamp("created_at", nullable=False, default_now=True),
)

api_keys = Table(
    "api_keys",
    metadata,
    _id(),
    _tenant(),
    Column("name", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("secret_hash", Text, nullable=False),
    Column("created_by", Text),
    _timestamp("created_at", nullable=False, default_now=True),
    _timestamp("last_used_at"),
    _timestamp("revoked_at"),
    Index(None, "tenant_id"),
)

packs = Table(
    "packs",
    metadata,
    _id(),
    _tenant(),
    Column("ref", Text, nullable=False),
    Column("label", Text),
    Column("description", Text),
    Column("version", Text),
    _timestamp("created_at", nullable=False, default_now=True),
    _timestamp("updated_at", nullable=False, default_now=True),
    _timestamp("deleted_at"),
    Index("uq_packs_tenant_ref_live", "tenant_id", "ref", unique=True, postgresql_where=NOT_DELETED),
)

agents = Table(
    "agents",
    metadata,
    _id(),
    _tenant(),
    Column("name", Text, nullable=False),
    Column("description", Text),
    Column("url", Text, nullable=False),
    Column("health_path", Text),
    Column("auth_type", Text, nullable=False, server_default="none"),
    Column("auth_config_encrypted", LargeBinary),
    Column("timeout_ms", Integer, nullable=False, server_default="30000"),
    Column("retry_config", JSONB),
    Column("status", Text, nullable=False, server_default="active"),
    _timestamp("created_at", nullable=False, default_now=True),
    _timestamp("updated_at", nullable=False, default_now=True),
    _timestamp("deleted_at"),
    Index("uq_agents_tenant_name_live", "tenant_id", "name", unique=True, postgresql_where=NOT_DELETED),
)

workflows = Table(
    "workflows",
    metadata,
    _id(),
    _tenant(),
    Column("pack_id", UUID(as_uuid=True), ForeignKey("packs.id"), nullable=False),
    Column("ref", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("label", Text),
    Column("description", Text),
    Column("tags", ARRAY(Text), nullable=False, server_default="{}"),
    Column("enabled", Boolean, nullable=False, server_default="true"),
    Column("public", Boolean, nullable=False, server_default="false"),
    Column("latest_version", Integer, nullable=False),
    # How long its executions are kept once their root finished (flowline.db.retention); NULL: the server's
    # FLOWLINE_EXECUTION_RETENTION.
    Column("retention_seconds", BigInteger),
    Column("created_by", Text),
    _timestamp("created_at", nullable=False, default_now=True),
    _timestamp("updated_at", nullable=False, default_now=True),
    _timestamp("deleted_at"),
    Index("uq_workflows_tenant_ref_live", "tenant_id", "ref", unique=True, postgresql_where=NOT_DELETED),
    # Lists: one keyset index per sort, the pack filter, tags (any of) and search (pg_trgm, for ILIKE '%…%').
    Index("ix_workflows_tenant_created", "tenant_id", "created_at", "id", postgresql_where=NOT_DELETED),
    Index("ix_workflows_tenant_updated", "tenant_id", "updated_at", "id", postgresql_where=NOT_DELETED),
    Index("ix_workflows_tenant_name", "tenant_id", "name", "id", postgresql_where=NOT_DELETED),
    Index("ix_workflows_pack", "pack_id", "created_at", "id", postgresql_where=NOT_DELETED),
    Index("ix_workflows_tags", "tags", postgresql_using="gin"),
    *(
        Index(f"ix_workflows_{column}_trgm", column, postgresql_using="gin", postgresql_ops={column: "gin_trgm_ops"})
        for column in ("name", "label", "description")
    ),
)

workflow_versions = Table(
    "workflow_versions",
    metadata,
    _id(),
    _tenant(),
    Column("workflow_id", UUID(as_uuid=True), ForeignKey("workflows.id", ondelete="CASCADE"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("definition", JSONB, nullable=False),
    Column("input_schema", JSONB),
    Column("output_schema", JSONB),
    Column("created_by", Text),
    _timestamp("created_at", nullable=False, default_now=True),
    UniqueConstraint("workflow_id", "version"),
)

executions = Table(
    "executions",
    metadata,
    _id(),
    _tenant(),
    Column("workflow_id", UUID(as_uuid=True), ForeignKey("workflows.id"), nullable=False),
    Column("workflow_version_id", UUID(as_uuid=True), ForeignKey("workflow_versions.id"), nullable=False),
    Column("workflow_ref", Text, nullable=False),
    Column("workflow_version", Integer, nullable=False),
    Column("status", Text, nullable=False),
    Column("input", JSONB, nullable=False, server_default="{}"),
    Column("output", JSONB),
    Column("error", JSONB),
    Column("parent_execution_id", UUID(as_uuid=True), ForeignKey("executions.id")),
    Column("parent_step_id", Text),
    Column("root_execution_id", UUID(as_uuid=True), nullable=False),
    Column("triggered_by", Text, nullable=False),
    # Who started it (flowline.domain.starting says in what forms), shown and filtered on; ``owned_by`` is the
    # principal it belongs to, which decides who may see it (a child belongs to its parent's owner).
    Column("started_by", Text),
    Column("owned_by", Text),
    Column("idempotency_key", Text),
    Column("metadata", JSONB, nullable=False, server_default="{}"),
    Column("tags", ARRAY(Text), nullable=False, server_default="{}"),
    Column("last_event_sequence", BigInteger, nullable=False, server_default="0"),
    _timestamp("created_at", nullable=False, default_now=True),
    _timestamp("updated_at", nullable=False, default_now=True),
    _timestamp("started_at"),
    _timestamp("completed_at"),
    _timestamp("cancelled_at"),
    Column("cancelled_by", Text),
    # A rerun reuses the outputs of ``rerun_of``'s steps that are not downstream of ``rerun_from_step``.
    # Removing the original (retention, DELETE) leaves a rerun of it standing, no longer linked.
    Column("rerun_of", UUID(as_uuid=True), ForeignKey("executions.id", ondelete="SET NULL")),
    Column("rerun_from_step", Text),
    # A schedule's run (flowline.domain.schedules): the schedule (no key: deleting a schedule keeps its past runs) and
    # the logical time the run stands for.
    Column("schedule_id", UUID(as_uuid=True)),
    _timestamp("scheduled_for"),
    Index(
        "uq_executions_tenant_idempotency_key",
        "tenant_id",
        "idempotency_key",
        unique=True,
        postgresql_where=text("idempotency_key IS NOT NULL"),
    ),
    # Lists (flowline.db.executions): one keyset index per sort and per equality filter, ending in the sort key
    # and id so that a page reads its rows in order and stops; GIN for tags (all of) and metadata (@>).
    Index("ix_executions_tenant_created", "tenant_id", "created_at", "id"),
    Index("ix_executions_tenant_status_created", "tenant_id", "status", "created_at", "id"),
    Index("ix_executions_tenant_workflow_created", "tenant_id", "workflow_ref", "created_at", "id"),
    Index("ix_executions_tenant_triggered_created", "tenant_id", "triggered_by", "created_at", "id"),
    Index("ix_executions_tenant_started_by_created", "tenant_id", "started_by", "created_at", "id"),
    Index(
        "ix_executions_tenant_schedule_created",
        "tenant_id",
        "schedule_id",
        "created_at",
        "id",
        postgresql_where=text("schedule_id IS NOT NULL"),
    ),
    Index("ix_executions_tenant_completed", "tenant_id", text("coalesce(completed_at, 'infinity'::timestamptz)"), "id"),
    Index("ix_executions_pending", "created_at", postgresql_where=text("status = 'pending'")),
    Index(
        "ix_executions_parent",
        "parent_execution_id",
        "created_at",
        "id",
        postgresql_where=text("parent_execution_id IS NOT NULL"),
    ),
    # The redrive (flowline_scheduler.redrive) starts from the active executions, not from history. Keyed by
    # columns that never change: a key on updated_at, which every event bumps, would make those updates non-HOT.
    Index("ix_executions_running", "id", postgresql_where=text("status = 'running'")),
    Index(
        "ix_executions_active_children",
        "parent_execution_id",
        postgresql_where=text("status IN ('pending', 'running', 'paused') AND parent_execution_id IS NOT NULL"),
    ),
    # Retention (flowline.db.retention): each workflow's finished roots by finish time, a root's descendants, and
    # the reruns that point at an execution (their link is cleared when it goes).
    Index(
        "ix_executions_finished_roots",
        "workflow_id",
        "completed_at",
        "id",
        postgresql_where=text("parent_execution_id IS NULL AND status IN ('completed', 'failed', 'cancelled')"),
    ),
    Index("ix_executions_root", "root_execution_id", postgresql_where=text("parent_execution_id IS NOT NULL")),
    Index("ix_executions_rerun_of", "rerun_of", postgresql_where=text("rerun_of IS NOT NULL")),
    Index("ix_executions_metadata", "metadata", postgresql_using="gin", postgresql_ops={"metadata": "jsonb_path_ops"}),
    Index("ix_executions_tags", "tags", postgresql_using="gin"),
)

step_executions = Table(
    "step_executions",
    metadata,
    _id(),
    _execution_tenant(),
    _execution(),
    Column("step_id", Text, nullable=False),
    Column("position", Integer, nullable=False),
    Column("step_type", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("generation", Integer, nullable=False, server_default="0"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("input", JSONB),
    Column("output", JSONB),
    Column("error", JSONB),
    Column("owner", Text),
    _timestamp("lease_expires_at"),
    _timestamp("created_at", nullable=False, default_now=True),
    _timestamp("scheduled_at"),
    _timestamp("started_at"),
    _timestamp("completed_at"),
    UniqueConstraint("execution_id", "step_id"),
    Index("ix_step_executions_lease", "lease_expires_at", postgresql_where=text("status = 'running'")),
    Index("ix_step_executions_scheduled", "scheduled_at", postgresql_where=text("status = 'scheduled'")),
)

task_attempts = Table(
    "task_attempts",
    metadata,
    _id(),
    _execution_tenant(),
    Column("step_execution_id", UUID(as_uuid=True), nullable=False),
    Column("execution_id", UUID(as_uuid=True), nullable=False),
    Column("generation", Integer, nullable=False),
    Column("number", Integer, nullable=False),
    Column("status", Text, nullable=False),
    Column("worker", Text),
    _timestamp("started_at", nullable=False, default_now=True),
    _timestamp("finished_at"),
    Column("duration_ms", Integer),
    Column("error", JSONB),
    Column("input", JSONB),  # what the attempt ran with
    Column("output", JSONB),
    UniqueConstraint("step_execution_id", "generation", "number"),
    Index(None, "execution_id"),
)

timers = Table(
    "timers",
    metadata,
    _id(),
    _execution_tenant(),
    _execution(),
    Column("step_execution_id", UUID(as_uuid=True)),
    Column("kind", Text, nullable=False),
    Column("status", Text, nullable=False, server_default="pending"),
    _timestamp("fire_at", nullable=False),
    Column("payload", JSONB),
    _timestamp("created_at", nullable=False, default_now=True),
    _timestamp("fired_at"),
    Index("ix_timers_due", "fire_at", postgresql_where=text("status = 'pending'")),
    Index("ix_timers_step", "step_execution_id"),
    Index(None, "execution_id"),
)

promises = Table(
    "promises",
    metadata,
    _id(),
    _execution_tenant(),
    _execution(),
    Column("step_execution_id", UUID(as_uuid=True)),
    Column("name", Text, nullable=False),
    Column("status", Text, nullable=False, server_default="pending"),
    Column("value", JSONB),
    Column("error", JSONB),
    _timestamp("created_at", nullable=False, default_now=True),
    _timestamp("settled_at"),
    _timestamp("expires_at"),
    UniqueConstraint("execution_id", "name"),
)

execution_events = Table(
    "execution_events",
    metadata,
    _execution(),
    Column("sequence", BigInteger, nullable=False),
    _execution_tenant(),
    Column("event_type", Text, nullable=False),
    Column("step_id", Text),
    Column("task_id", UUID(as_uuid=True)),
    Column("data", JSONB, nullable=False, server_default="{}"),
    _timestamp("occurred_at", nullable=False, default_now=True),
    PrimaryKeyConstraint("execution_id", "sequence"),
    # The webhook sweep's window (flowline.db.webhook_sweep): rows come in about this order, so a BRIN index finds
    # a window in a few page ranges and costs an insert next to nothing.
    Index(
        "ix_execution_events_occurred_at",
        "occurred_at",
        postgresql_using="brin",
        postgresql_with={"autosummarize": "on"},
    ),
)

# Partitioned by day on the record's own timestamp (docs/architecture.md §6.2): the scheduler creates the days
# ahead and drops whole days past retention; ``flowline.db.log_partitions`` owns the partitions. The key holds the
# partition key, as PostgreSQL requires; a record's timestamp comes with it, so a redelivered one meets its key.
task_logs = Table(
    "task_logs",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("tenant_id", UUID(as_uuid=True), nullable=False),
    Column("execution_id", UUID(as_uuid=True), nullable=False),
    Column("task_id", UUID(as_uuid=True)),
    Column("step_id", Text),
    Column("attempt", Integer),
    Column("level", Text, nullable=False),
    Column("message", Text, nullable=False),
    Column("timestamp", DateTime(timezone=True), primary_key=True),
    Column("metadata", JSONB),
    Index("ix_task_logs_task", "task_id", "timestamp"),
    Index("ix_task_logs_execution", "execution_id", "timestamp"),
    postgresql_partition_by="RANGE (timestamp)",
)

# What each task has stored of its log, so that log-ingest applies the per-task limits without counting rows
# (flowline.db.task_logs). Keyed by the task, or by the execution for records that name no task; its rows go
# with their execution.
task_log_usage = Table(
    "task_log_usage",
    metadata,
    Column("task_key", UUID(as_uuid=True), primary_key=True),
    Column("tenant_id", UUID(as_uuid=True), nullable=False),
    Column("execution_id", UUID(as_uuid=True), nullable=False),
    Column("records", Integer, nullable=False, server_default=text("0")),
    Column("bytes", BigInteger, nullable=False, server_default=text("0")),
    Column("dropped", BigInteger, nullable=False, server_default=text("0")),
    # The latest timestamp of a record stored, and that of the record that reports the dropped ones (its partition
    # key), once there is one: after every record stored.
    _timestamp("last_at"),
    _timestamp("notice_at"),
    _timestamp("updated_at", nullable=False, default_now=True),
    Index("ix_task_log_usage_execution", "execution_id"),
)

audit_logs = Table(
    "audit_logs",
    metadata,
    _id(),
    _tenant(),
    Column("entity_type", Text, nullable=False),
    Column("entity_id", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("principal", Text),
    Column("changes", JSONB),
    Column("request_id", Text),
    _timestamp("occurred_at", nullable=False, default_now=True),
    Index("ix_audit_logs_tenant_occurred", "tenant_id", "occurred_at"),
    Index("ix_audit_logs_entity", "tenant_id", "entity_type", "entity_id"),
    # Audit retention removes the oldest rows of every tenant.
    Index("ix_audit_logs_occurred", "occurred_at"),
)

# A bulk cancel or retry, worked through by the scheduler in id order; ``last_execution_id`` is where to resume.
bulk_operations = Table(
    "bulk_operations",
    metadata,
    _id(),
    _tenant(),
    Column("kind", Text, nullable=False),
    Column("selection", JSONB, nullable=False),
    Column("note", Text),
    # The principal that created it: only they (and admins) may read it, as with an execution's owned_by.
    Column("created_by", Text),
    Column("dry_run", Boolean, nullable=False, server_default=text("false")),
    Column("status", Text, nullable=False, server_default="pending"),
    Column("total", Integer, nullable=False, server_default=text("0")),
    Column("succeeded", Integer, nullable=False, server_default=text("0")),
    Column("failed", Integer, nullable=False, server_default=text("0")),
    Column("skipped", Integer, nullable=False, server_default=text("0")),
    Column("errors", JSONB, nullable=False, server_default="[]"),
    Column("last_execution_id", UUID(as_uuid=True)),
    # A backfill's cursor: the fire times up to and including this one are done.
    _timestamp("last_scheduled_for"),
    _timestamp("created_at", nullable=False, default_now=True),
    _timestamp("started_at"),
    _timestamp("completed_at"),
    Index("ix_bulk_operations_unfinished", "created_at", postgresql_where=text("status IN ('pending', 'running')")),
)

# Cron and interval schedules (flowline.domain.schedules), fired by the scheduler (flowline_scheduler.schedules), which
# claims due rows by ``next_run_at`` with FOR UPDATE SKIP LOCKED. ``buffered_for`` is a run held back by the
# buffer_one overlap policy until the running one finishes.
schedules = Table(
    "schedules",
    metadata,
    _id(),
    _tenant(),
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
    _timestamp("start_at"),
    _timestamp("end_at"),
    Column("paused", Boolean, nullable=False, server_default=text("false")),
    Column("metadata", JSONB, nullable=False, server_default="{}"),
    Column("tags", ARRAY(Text), nullable=False, server_default="{}"),
    Column("created_by", Text),
    _timestamp("next_run_at"),
    _timestamp("buffered_for"),
    _timestamp("last_run_at"),
    Column("last_execution_id", UUID(as_uuid=True)),
    _timestamp("created_at", nullable=False, default_now=True),
    _timestamp("updated_at", nullable=False, default_now=True),
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
    _id(),
    _tenant(),
    Column("url", Text, nullable=False),
    Column("events", ARRAY(Text), nullable=False),
    Column("workflows", ARRAY(Text)),  # workflow refs; null: every workflow
    Column("description", Text),
    Column("enabled", Boolean, nullable=False, server_default=text("true")),
    Column("disabled_reason", Text),
    Column("secret_sealed", Text, nullable=False),
    Column("previous_secret_sealed", Text),
    _timestamp("previous_secret_expires_at"),
    # Since when every delivery failed (null after a success): a webhook failing long enough is disabled.
    _timestamp("failing_since"),
    _timestamp("created_at", nullable=False, default_now=True),
    _timestamp("updated_at", nullable=False, default_now=True),
    Index("ix_webhooks_tenant_created", "tenant_id", "created_at", "id"),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    _id(),
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
    _timestamp("next_attempt_at"),
    _timestamp("event_at", nullable=False),
    _timestamp("created_at", nullable=False, default_now=True),
    _timestamp("delivered_at"),
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
    _timestamp("swept_at", nullable=False),
    Column("swept_execution_id", UUID(as_uuid=True), nullable=False),
    Column("swept_sequence", BigInteger, nullable=False),
    CheckConstraint("id", name="single_row"),
)

outbox = Table(
    "outbox",
    metadata,
    _id(),
    Column("topic", Text, nullable=False),
    Column("key", LargeBinary),
    Column("payload", LargeBinary, nullable=False),
    Column("request_id", Text),
    _timestamp("created_at", nullable=False, default_now=True),
    Index("ix_outbox_created", "created_at"),
)

inbox = Table(
    "inbox",
    metadata,
    Column("consumer", Text, nullable=False),
    Column("message_id", UUID(as_uuid=True), nullable=False),
    _timestamp("processed_at", nullable=False, default_now=True),
    PrimaryKeyConstraint("consumer", "message_id"),
    Index("ix_inbox_processed", "processed_at"),
)

# Litestar's stores over PostgreSQL (flowline.db.store): the api's rate-limit budgets, shared by its replicas.
store_entries = Table(
    "store_entries",
    metadata,
    Column("namespace", Text, nullable=False),
    Column("key", Text, nullable=False),
    Column("value", LargeBinary, nullable=False),
    _timestamp("expires_at"),
    PrimaryKeyConstraint("namespace", "key"),
    Index("ix_store_entries_expires_at", "expires_at"),
)
