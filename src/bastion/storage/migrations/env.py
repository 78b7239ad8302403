"""Alembic environment for Bastion's migrations.

Normally run by :mod:`bastion.storage.migrate`, which passes an open connection in
``config.attributes["connection"]``. Run by the ``alembic`` command (to write a new migration
with ``--autogenerate``), it connects to ``sqlalchemy.url`` or to the database the settings name.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import Connection

from bastion.storage.database import Database
from bastion.storage.schema import load_metadata

target_metadata = load_metadata()


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things: batch mode recreates the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _url() -> str:
    url = context.config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from bastion.config.settings import Settings  # noqa: PLC0415 - only for the alembic command

    return Settings().effective_database_url


async def _run_own_connection() -> None:
    database = Database(_url())
    try:
        async with database.engine.begin() as connection:
            await connection.run_sync(_run)
    finally:
        await database.dispose()


def _run_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


_connection = context.config.attributes.get("connection")
if _connection is not None:
    _run(_connection)
elif context.is_offline_mode():
    _run_offline()
else:
    asyncio.run(_run_own_connection())
