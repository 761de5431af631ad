"""The data model's shared parts: the metadata with its naming convention, and the columns most tables repeat."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, ForeignKey, MetaData, text
from sqlalchemy.dialects.postgresql import UUID

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)


def id_column() -> Column[object]:
    """A row's own id (a UUIDv7 the code makes)."""
    return Column("id", UUID(as_uuid=True), primary_key=True)


def tenant_column() -> Column[object]:
    """The tenant a row belongs to, with its key: tenants are never deleted, so the cascade is for tests."""
    return Column("tenant_id", UUID(as_uuid=True), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False)


def execution_tenant_column() -> Column[object]:
    """The tenant of a row that belongs to an execution, copied from it for reads by tenant: no foreign key.

    The execution ties the row to its tenant, so a key here would check again, for every row written, what the
    execution's own key checked; and each check locks the tenant's single row (FOR KEY SHARE), which every
    concurrent writer of every execution then shares: a dozen rows per execution on the hot path.
    """
    return Column("tenant_id", UUID(as_uuid=True), nullable=False)


def execution_column() -> Column[object]:
    """The execution a row (step, attempt, timer, promise, event) belongs to: no foreign key (docs/architecture.md §6).

    Such rows are written only by a transaction that holds their execution's row lock, and removed with it, whole
    tree by whole tree (flowline.domain.removal); a key would check each row written (locking the execution) and
    cost a trigger call per row removed, half of what retention spent.
    """
    return Column("execution_id", UUID(as_uuid=True), nullable=False)


def timestamp_column(name: str, *, nullable: bool = True, default_now: bool = False) -> Column[object]:
    """A point in time with its zone, optionally defaulting to the transaction's ``now()``."""
    return Column(
        name,
        DateTime(timezone=True),
        nullable=nullable,
        server_default=text("now()") if default_now else None,
    )
