import asyncio

import asyncpg
from flowline.db.migrate import downgrade, upgrade_head
from flowline.db.tables import metadata


async def _tables(url: str) -> set[str]:
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    finally:
        await connection.close()
    return {row["tablename"] for row in rows}


async def test_downgrade_to_base_then_upgrade_to_head(database_url: str) -> None:
    assert set(metadata.tables) <= await _tables(database_url)

    await asyncio.to_thread(downgrade, database_url, "base")
    assert await _tables(database_url) <= {"alembic_version"}

    await asyncio.to_thread(upgrade_head, database_url)
    assert set(metadata.tables) <= await _tables(database_url)
