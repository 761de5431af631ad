"""Alembic environment: runs migrations over asyncpg so no second driver is needed."""

import asyncio

from alembic import context
from flowline.db.log_partitions import is_partition
from flowline.db.tables import metadata
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

config = context.config


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Leave the partitions of task_logs out of autogenerate: the scheduler manages them, not the definitions."""
    return not (type_ == "table" and name is not None and is_partition(name))


def run_with_connection(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, compare_type=True, include_name=include_name)
    with context.begin_transaction():
        context.run_migrations()


async def run_online() -> None:
    engine = create_async_engine(config.get_main_option("sqlalchemy.url") or "")
    try:
        async with engine.connect() as connection:
            await connection.run_sync(run_with_connection)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(run_online())
