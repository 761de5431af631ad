"""The data model (docs/architecture.md §6) as SQLAlchemy 2 tables: migrations derive from them; queries use asyncpg."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

# The schedules' and webhooks' tables live apart, on the same metadata: importing them here puts every table
# on ``metadata`` for whoever reads the model (migrations, their check, the tests).
from flowline.db import automation_tables as automation_tables
from flowline.db.columns import (
    execution_column,
    execution_tenant_column,
    id_column,
    tenant_column,
    timestamp_column,
)
from flowline.db.columns import metadata as metadata  # the whole model's, every table on it

NOT_DELETED = text("deleted_at IS NULL")

tenants = Table(
    "tenants",
    metadata,
    id_column(),
    Column("slug", Text, nullable=False, unique=True),
    Column("name", Text, nullable=False),
    # How long the executions of its workflows that set no retention of their own are kept once their root
    # finished (flowline.db.retention); NULL: the server's FLOWLINE_EXECUTION_RETENTION.
    Column("retention_seconds", BigInteger),
    timestamp_column("created_at", nullable=False, default_now=True),
)

api_keys = Table(
    "api_keys",
    metadata,
    id_column(),
    tenant_column(),
    Column("name", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("secret_hash", Text, nullable=False),
    Column("created_by", Text),
    timestamp_column("created_at", nullable=False, default_now=True),
    timestamp_column("last_used_at"),
    timestamp_column("revoked_at"),
    Index(None, "tenant_id"),
)

packs = Table(
    "packs",
    metadata,
    id_column(),
    tenant_column(),
    Column("ref", Text, nullable=False),
    Column("label", Text),
    Column("description", Text),
    Column("version", Text),
    timestamp_column("created_at", nullable=False, default_now=True),
    timestamp_column("updated_at", nullable=False, default_now=True),
    timestamp_column("deleted_at"),
    Index("uq_packs_tenant_ref_live", "tenant_id", "ref", unique=True, postgresql_where=NOT_DELETED),
)

agents = Table(
    "agents",
    metadata,
    id_column(),
    tenant_column(),
    Column("name", Text, nullable=False),
    Column("description", Text),
    Column("url", Text, nullable=False),
    Column("health_path", Text),
    Column("auth_type", Text, nullable=False, server_default="none"),
    Column("auth_config_encrypted", LargeBinary),
    Column("timeout_ms", Integer, nullable=False, server_default="30000"),
    Column("retry_config", JSONB),
    Column("status", Text, nullable=False, server_default="active"),
    timestamp_column("created_at", nullable=False, default_now=True),
    timestamp_column("updated_at", nullable=False, default_now=True),
    timestamp_column("deleted_at"),
    Index("uq_agents_tenant_name_live", "tenant_id", "name", unique=True, postgresql_where=NOT_DELETED),
)

workflows = Table(
    "workflows",
    metadata,
    id_column(),
    tenant_column(),
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
    timestamp_column("created_at", nullable=False, default_now=True),
    timestamp_column("updated_at", nullable=False, default_now=True),
    timestamp_column("deleted_at"),
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
    id_column(),
    tenant_column(),
    Column("workflow_id", UUID(as_uuid=True), ForeignKey("workflows.id", ondelete="CASCADE"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("definition", JSONB, nullable=False),
    Column("input_schema", JSONB),
    Column("output_schema", JSONB),
    Column("created_by", Text),
    timestamp_column("created_at", nullable=False, default_now=True),
    UniqueConstraint("workflow_id", "version"),
)

executions = Table(
    "executions",
    metadata,
    id_column(),
    tenant_column(),
    Column("workflow_id", UUID(as_uuid=True), ForeignKey("workflows.id"), nullable=False),
    Column("workflow_version_id", UUID(as_uuid=True), ForeignKey("workflow_versions.id"), nullable=False),
    Column("workflow_ref", Text, nullable=False),
    Column("workflow_version", Integer, nullable=False),
    Column("status", Text, nullable=False),
    Column("input", JSONB, nullable=False, server_default="{}"),
    Column("output", JSONB),
    Column("error", JSONB),
    # A child's parent and a rerun's original have no key (0013): a child is written under its parent's lock and
    # goes with its tree; a rerun locks its original while it is created (docs/architecture.md §6).
    Column("parent_execution_id", UUID(as_uuid=True)),
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
    timestamp_column("created_at", nullable=False, default_now=True),
    timestamp_column("updated_at", nullable=False, default_now=True),
    timestamp_column("started_at"),
    timestamp_column("completed_at"),
    timestamp_column("cancelled_at"),
    Column("cancelled_by", Text),
    # A rerun reuses the outputs of ``rerun_of``'s steps that are not downstream of ``rerun_from_step``.
    # Removing the original (retention, DELETE) leaves a rerun of it standing, no longer linked (the removal
    # clears ``rerun_of``).
    Column("rerun_of", UUID(as_uuid=True)),
    Column("rerun_from_step", Text),
    # A schedule's run (flowline.domain.schedules): the schedule (no key: deleting a schedule keeps its past runs) and
    # the logical time the run stands for.
    Column("schedule_id", UUID(as_uuid=True)),
    timestamp_column("scheduled_for"),
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
    id_column(),
    execution_tenant_column(),
    execution_column(),
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
    timestamp_column("lease_expires_at"),
    timestamp_column("created_at", nullable=False, default_now=True),
    timestamp_column("scheduled_at"),
    timestamp_column("started_at"),
    timestamp_column("completed_at"),
    UniqueConstraint("execution_id", "step_id"),
    Index("ix_step_executions_lease", "lease_expires_at", postgresql_where=text("status = 'running'")),
    Index("ix_step_executions_scheduled", "scheduled_at", postgresql_where=text("status = 'scheduled'")),
)

task_attempts = Table(
    "task_attempts",
    metadata,
    id_column(),
    execution_tenant_column(),
    Column("step_execution_id", UUID(as_uuid=True), nullable=False),
    Column("execution_id", UUID(as_uuid=True), nullable=False),
    Column("generation", Integer, nullable=False),
    Column("number", Integer, nullable=False),
    Column("status", Text, nullable=False),
    Column("worker", Text),
    timestamp_column("started_at", nullable=False, default_now=True),
    timestamp_column("finished_at"),
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
    id_column(),
    execution_tenant_column(),
    execution_column(),
    Column("step_execution_id", UUID(as_uuid=True)),
    Column("kind", Text, nullable=False),
    Column("status", Text, nullable=False, server_default="pending"),
    timestamp_column("fire_at", nullable=False),
    Column("payload", JSONB),
    timestamp_column("created_at", nullable=False, default_now=True),
    timestamp_column("fired_at"),
    Index("ix_timers_due", "fire_at", postgresql_where=text("status = 'pending'")),
    Index("ix_timers_step", "step_execution_id"),
    Index(None, "execution_id"),
)

promises = Table(
    "promises",
    metadata,
    id_column(),
    execution_tenant_column(),
    execution_column(),
    Column("step_execution_id", UUID(as_uuid=True)),
    Column("name", Text, nullable=False),
    Column("status", Text, nullable=False, server_default="pending"),
    Column("value", JSONB),
    Column("error", JSONB),
    timestamp_column("created_at", nullable=False, default_now=True),
    timestamp_column("settled_at"),
    timestamp_column("expires_at"),
    UniqueConstraint("execution_id", "name"),
)

execution_events = Table(
    "execution_events",
    metadata,
    execution_column(),
    Column("sequence", BigInteger, nullable=False),
    execution_tenant_column(),
    Column("event_type", Text, nullable=False),
    Column("step_id", Text),
    Column("task_id", UUID(as_uuid=True)),
    Column("data", JSONB, nullable=False, server_default="{}"),
    timestamp_column("occurred_at", nullable=False, default_now=True),
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
    timestamp_column("last_at"),
    timestamp_column("notice_at"),
    timestamp_column("updated_at", nullable=False, default_now=True),
    Index("ix_task_log_usage_execution", "execution_id"),
)

audit_logs = Table(
    "audit_logs",
    metadata,
    id_column(),
    tenant_column(),
    Column("entity_type", Text, nullable=False),
    Column("entity_id", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("principal", Text),
    Column("changes", JSONB),
    Column("request_id", Text),
    timestamp_column("occurred_at", nullable=False, default_now=True),
    Index("ix_audit_logs_tenant_occurred", "tenant_id", "occurred_at"),
    Index("ix_audit_logs_entity", "tenant_id", "entity_type", "entity_id"),
    # Audit retention removes the oldest rows of every tenant.
    Index("ix_audit_logs_occurred", "occurred_at"),
)

# A bulk cancel or retry, worked through by the scheduler in id order; ``last_execution_id`` is where to resume.
bulk_operations = Table(
    "bulk_operations",
    metadata,
    id_column(),
    tenant_column(),
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
    timestamp_column("last_scheduled_for"),
    timestamp_column("created_at", nullable=False, default_now=True),
    timestamp_column("started_at"),
    timestamp_column("completed_at"),
    Index("ix_bulk_operations_unfinished", "created_at", postgresql_where=text("status IN ('pending', 'running')")),
)

outbox = Table(
    "outbox",
    metadata,
    id_column(),
    Column("topic", Text, nullable=False),
    Column("key", LargeBinary),
    Column("payload", LargeBinary, nullable=False),
    Column("request_id", Text),
    timestamp_column("created_at", nullable=False, default_now=True),
    Index("ix_outbox_created", "created_at"),
)

inbox = Table(
    "inbox",
    metadata,
    Column("consumer", Text, nullable=False),
    Column("message_id", UUID(as_uuid=True), nullable=False),
    timestamp_column("processed_at", nullable=False, default_now=True),
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
    timestamp_column("expires_at"),
    PrimaryKeyConstraint("namespace", "key"),
    Index("ix_store_entries_expires_at", "expires_at"),
)
