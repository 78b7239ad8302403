"""Alembic migrations, run programmatically (``bastion migrate``, ``bastion serve``).

The scripts live in the package (``bastion/storage/migrations``), so an installed Bastion can
migrate its own database without an ``alembic.ini``. The async engine runs Alembic's synchronous
API through ``run_sync`` on one connection, inside one transaction.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from bastion.storage.database import Database
from bastion.storage.errors import MigrationError

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def alembic_config() -> Config:
    """An Alembic config pointing at the packaged scripts (no ini file needed)."""
    config = Config()
    # ConfigParser interpolates "%": escape it in case the install path contains one.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    return config


def head_revision() -> str | None:
    """The newest revision shipped with this version of Bastion."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _upgrade(connection: Connection, config: Config, revision: str) -> None:
    # env.py runs the migrations on this connection instead of opening its own.
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def upgrade(database_url: str, revision: str = "head") -> None:
    """Migrate the database up to ``revision``.

    Raises StorageUnavailable when the database cannot be reached, MigrationError when a
    migration fails (the failed migration's transaction is rolled back).
    """
    database = Database(database_url)
    try:
        await database.ping()
        async with database.engine.begin() as connection:
            await connection.run_sync(_upgrade, alembic_config(), revision)
    except (CommandError, SQLAlchemyError) as exc:
        raise MigrationError from exc
    finally:
        await database.dispose()


def upgrade_sync(database_url: str, revision: str = "head") -> None:
    """:func:`upgrade` for synchronous callers (not from inside a running event loop)."""
    asyncio.run(upgrade(database_url, revision))


async def current_revision(database_url: str) -> str | None:
    """The revision the database is at; None for a database never migrated.

    Raises StorageUnavailable when the database cannot be reached.
    """
    database = Database(database_url)
    try:
        await database.ping()
        async with database.engine.connect() as connection:
            return await connection.run_sync(_current)
    except SQLAlchemyError as exc:
        raise MigrationError from exc
    finally:
        await database.dispose()


async def is_up_to_date(database_url: str) -> bool:
    """Whether the database is at the newest shipped revision."""
    return await current_revision(database_url) == head_revision()
