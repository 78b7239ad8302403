"""PostgreSQL databases for the tests of one process, reused from test to test.

A test on PostgreSQL gets a database of its own. Creating one and dropping it cost the server
~0.3 s of CPU (0.45 s for a copy of the migrated template), nearly all of it system time: the
relation files written, synced and unlinked (measured on PostgreSQL 15, the CI machine's). With
some 700 PostgreSQL tests, that was a quarter of the suite's CPU, the largest cost of CI.

So a database is created once and handed from test to test, as two pools:

- *empty* databases: what ``database_url`` promises. One that a test left empty (no relation
  at all) goes back to this pool as it is.
- *clean* databases: at the migrations' head with the template's rows only. A test that left
  its database at head, with the template's schema to the last column, index and constraint,
  gives it back here once every row is deleted, the template's own rows (the Alembic version,
  the audit chain's head) put back and every sequence restarted. Anything else (a migration
  test's downgrade, a table a test created) is dropped.

A test that migrates its empty database (``tests.conftest.migrated``) swaps it for a clean one by
renaming both (``ALTER DATABASE ... RENAME``: a catalog update, ~1 ms), so its database keeps the
name its settings hold. With the pools filled, a test costs no ``CREATE DATABASE`` nor ``DROP``.
What is left in the pools is dropped when the process exits; a process that could not (killed,
or cut short while dropping) leaves databases named with its pid, which the next test process
drops.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

#: Per pool: enough for a test that uses a few databases at once; the rest are dropped.
POOL_SIZE = 4

_RELATIONS = """
SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
"""
#: The schema, everything a test could change: relations, columns, indexes, constraints, schemas.
_FINGERPRINT = """
SELECT md5(coalesce(string_agg(item, '|' ORDER BY item), '')) FROM (
    SELECT 'c:' || table_schema || '.' || table_name || '.' || column_name || ':' || data_type
           || ':' || is_nullable || ':' || coalesce(column_default, '') AS item
    FROM information_schema.columns
    WHERE table_schema NOT IN ('pg_catalog', 'information_schema')
    UNION ALL
    SELECT 'i:' || schemaname || ':' || indexdef FROM pg_indexes
    WHERE schemaname NOT IN ('pg_catalog', 'information_schema')
    UNION ALL
    SELECT 'k:' || conrelid::regclass::text || ':' || conname || ':' || pg_get_constraintdef(oid)
    FROM pg_constraint WHERE connamespace <> 'pg_catalog'::regnamespace
    UNION ALL
    SELECT 'r:' || n.nspname || '.' || c.relname || ':' || c.relkind::text
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
    UNION ALL
    SELECT 'n:' || nspname FROM pg_namespace
    WHERE nspname NOT IN ('pg_catalog', 'information_schema') AND nspname NOT LIKE 'pg\\_%'
    UNION ALL
    SELECT 'p:' || p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
    UNION ALL
    SELECT 't:' || tgname FROM pg_trigger WHERE NOT tgisinternal
) AS schema_items
"""


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def new_name(kind: str = "t") -> str:
    """A database name of this process: its pid, so that a later process can tell a leftover of
    one that ended (:meth:`PostgresDatabases.drop_orphans`). Letters, digits and underscores
    only: safe to format into DDL (CREATE DATABASE takes no bound parameters)."""
    return f"bastion_{kind}_{os.getpid()}_{secrets.token_hex(6)}"


_OWNED = re.compile(r"^bastion_(?:t|tpl)_([0-9]+)_[0-9a-f]{12}$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's: alive
        return True
    return True


@dataclass(frozen=True)
class Template:
    """The migrated template database and what a clean copy of it holds."""

    name: str
    fingerprint: str
    tables: Sequence[str]
    sequences: Sequence[str]
    #: table -> (columns, rows): the rows the migrations wrote.
    rows: dict[str, tuple[list[str], list[tuple[Any, ...]]]]

    @classmethod
    async def read(cls, name: str, connection: asyncpg.Connection) -> Template:
        tables = [
            row["name"]
            for row in await connection.fetch(
                "SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) AS name"
                " FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
            )
        ]
        sequences = [
            row["name"]
            for row in await connection.fetch(
                "SELECT quote_ident(schemaname) || '.' || quote_ident(sequencename) AS name"
                " FROM pg_sequences"
            )
        ]
        rows: dict[str, tuple[list[str], list[tuple[Any, ...]]]] = {}
        for table in tables:
            records = await connection.fetch(f"SELECT * FROM {table}")  # noqa: S608 - catalog names
            if records:
                rows[table] = (list(records[0].keys()), [tuple(r.values()) for r in records])
        fingerprint = await connection.fetchval(_FINGERPRINT)
        return cls(name, fingerprint, tables, sequences, rows)

    async def restore(self, connection: asyncpg.Connection) -> bool:
        """Make the database ``connection`` is on hold the template's rows again; False (and
        nothing changed) when its schema is not the template's."""
        if await connection.fetchval(_FINGERPRINT) != self.fingerprint:
            return False
        async with connection.transaction():
            # Foreign keys not enforced for this transaction: every row goes, in any order.
            await connection.execute("SET LOCAL session_replication_role = replica")
            for table in self.tables:
                await connection.execute(f"DELETE FROM {table}")  # noqa: S608 - catalog names
            for table, (columns, rows) in self.rows.items():
                names = ", ".join(_ident(column) for column in columns)
                marks = ", ".join(f"${n}" for n in range(1, len(columns) + 1))
                await connection.executemany(
                    f"INSERT INTO {table} ({names}) VALUES ({marks})",  # noqa: S608 - catalog names
                    rows,
                )
            for sequence in self.sequences:
                await connection.execute(f"ALTER SEQUENCE {sequence} RESTART")
        return True


class PostgresDatabases:
    """The pools of one test process (see the module's docstring)."""

    def __init__(self, server_url: str) -> None:
        self._server_url = server_url  # a plain libpq URL (asyncpg's), to any database
        self.empty: list[str] = []
        self.clean: list[str] = []
        self._swept = False

    def _url(self, database: str) -> str:
        base, _, _ = self._server_url.rpartition("/")
        return f"{base}/{database}"

    async def empty_database(self, admin: asyncpg.Connection) -> str:
        """The name of an empty database for one test, made or taken from the pool."""
        if self.empty:
            return self.empty.pop()
        name = new_name()
        await admin.execute(f"CREATE DATABASE {_ident(name)}")
        return name

    async def make_migrated(self, admin: asyncpg.Connection, name: str, template: str) -> None:
        """Turn the empty database ``name`` into a migrated one, keeping its name."""
        if self.clean:
            clean = self.clean.pop()
            spare = new_name()
            await _rename(admin, name, spare)
            await _rename(admin, clean, name)
            if len(self.empty) < POOL_SIZE:
                self.empty.append(spare)
            else:
                await admin.execute(f"DROP DATABASE {_ident(spare)} WITH (FORCE)")
            return
        await admin.execute(f"DROP DATABASE {_ident(name)} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {_ident(name)} TEMPLATE {_ident(template)}")

    async def release(
        self, admin: asyncpg.Connection, name: str, template: Template | None
    ) -> None:
        """A test is done with ``name``: back to a pool when it is empty or can be made clean,
        otherwise dropped."""
        await _end_sessions(admin, name)
        pool: list[str] | None = None
        try:
            connection = await asyncpg.connect(self._url(name), timeout=5)
        except (OSError, asyncpg.PostgresError):
            connection = None
        if connection is not None:
            try:
                if await connection.fetchval(_RELATIONS) == 0:
                    pool = self.empty
                elif template is not None and await template.restore(connection):
                    pool = self.clean
            except asyncpg.PostgresError:
                pool = None
            finally:
                await connection.close()
        if pool is None or len(pool) >= POOL_SIZE:
            await admin.execute(f"DROP DATABASE IF EXISTS {_ident(name)} WITH (FORCE)")
        else:
            pool.append(name)

    def pooled(self) -> list[str]:
        return [*self.empty, *self.clean]

    async def drop_orphans(self, admin: asyncpg.Connection) -> list[str]:
        """Drop the databases of test processes that have ended (once a process). A process
        drops its own at exit, but one killed, or cut short while dropping, leaves them."""
        if self._swept:
            return []
        self._swept = True
        orphans = []
        for row in await admin.fetch("SELECT datname FROM pg_database"):
            owner = _OWNED.match(row["datname"])
            if owner is not None and not _alive(int(owner.group(1))):
                orphans.append(row["datname"])
        for name in orphans:
            await admin.execute(f"DROP DATABASE IF EXISTS {_ident(name)} WITH (FORCE)")
        return orphans


async def _end_sessions(admin: asyncpg.Connection, name: str) -> None:
    """End every session on ``name`` (a test's app that did not close its pool) and wait."""
    for _ in range(200):
        alive = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
        )
        if not alive:
            return
        await asyncio.sleep(0.01)


async def _rename(admin: asyncpg.Connection, old: str, new: str) -> None:
    """``ALTER DATABASE old RENAME TO new``, once the sessions on ``old`` have ended (a
    connection just closed by a check may still be leaving the server)."""
    statement = f"ALTER DATABASE {_ident(old)} RENAME TO {_ident(new)}"
    for _ in range(200):
        try:
            await admin.execute(statement)
        except asyncpg.ObjectInUseError:
            await _end_sessions(admin, old)
        else:
            return
    await admin.execute(statement)
