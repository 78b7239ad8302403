"""The test processes' PostgreSQL pools (tests/common/pg_databases.py): a database handed to the
next test holds nothing the last one wrote, and one whose schema changed is never handed on."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy.engine import make_url
from tests.common.pg_databases import PostgresDatabases, Template, new_name
from tests.conftest import POSTGRES_URL, migrated

pytestmark = pytest.mark.postgres


@pytest.fixture
async def admin(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    # database_url: the server is there (or the test skips / fails under CI=true).
    del database_url
    connection = await asyncpg.connect(POSTGRES_URL, timeout=5)
    try:
        yield connection
    finally:
        await connection.close()


def _dsn(name: str) -> str:
    return make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)


def _sqlalchemy_url(name: str) -> str:
    url = make_url(POSTGRES_URL).set(drivername="postgresql+asyncpg", database=name)
    return url.render_as_string(hide_password=False)


async def _template(admin: asyncpg.Connection) -> Template:
    name = new_name("tpl")
    await admin.execute(f'CREATE DATABASE "{name}"')
    await migrated(_sqlalchemy_url(name))  # empty: becomes a copy of the process's template
    connection = await asyncpg.connect(_dsn(name), timeout=5)
    try:
        return await Template.read(name, connection)
    finally:
        await connection.close()


async def _exists(admin: asyncpg.Connection, name: str) -> bool:
    return bool(await admin.fetchval("SELECT count(*) FROM pg_database WHERE datname = $1", name))


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_a_migrated_database_comes_back_clean(admin: asyncpg.Connection) -> None:
    template = await _template(admin)
    pools = PostgresDatabases(POSTGRES_URL)
    try:
        name = await pools.empty_database(admin)
        await pools.make_migrated(admin, name, template.name)
        connection = await asyncpg.connect(_dsn(name), timeout=5)
        try:
            await connection.execute(
                "INSERT INTO setup_tokens (token_hash, created_at, expires_at)"
                " VALUES ('x', now(), now())"
            )
            await connection.execute("UPDATE audit_chain_head SET seq = seq + 41")
            first_id = await connection.fetchval("SELECT max(id) FROM setup_tokens")
        finally:
            await connection.close()
        await pools.release(admin, name, template)
        assert pools.clean == [name]

        again = await pools.empty_database(admin)
        await pools.make_migrated(admin, again, template.name)  # takes the clean one
        assert pools.clean == []
        connection = await asyncpg.connect(_dsn(again), timeout=5)
        try:
            assert await connection.fetchval("SELECT count(*) FROM setup_tokens") == 0
            head = [
                tuple(r.values()) for r in await connection.fetch("SELECT * FROM audit_chain_head")
            ]
            assert head == template.rows["public.audit_chain_head"][1]
            await connection.execute(
                "INSERT INTO setup_tokens (token_hash, created_at, expires_at)"
                " VALUES ('y', now(), now())"
            )
            assert await connection.fetchval("SELECT max(id) FROM setup_tokens") == first_id
        finally:
            await connection.close()
        await pools.release(admin, again, template)
    finally:
        for name in [*pools.pooled(), template.name]:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_a_changed_schema_is_dropped_and_an_empty_database_is_kept(
    admin: asyncpg.Connection,
) -> None:
    template = await _template(admin)
    pools = PostgresDatabases(POSTGRES_URL)
    try:
        empty = await pools.empty_database(admin)
        await pools.release(admin, empty, template)
        assert pools.empty == [empty]

        changed = await pools.empty_database(admin)
        assert changed == empty  # reused
        await pools.make_migrated(admin, changed, template.name)
        connection = await asyncpg.connect(_dsn(changed), timeout=5)
        try:
            await connection.execute("CREATE INDEX extra ON setup_tokens (expires_at)")
        finally:
            await connection.close()
        await pools.release(admin, changed, template)
        assert pools.clean == []
        assert not await _exists(admin, changed)
    finally:
        for name in [*pools.pooled(), template.name]:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_the_databases_of_ended_processes_are_dropped(admin: asyncpg.Connection) -> None:
    gone = await asyncio.create_subprocess_exec("true")
    await gone.wait()
    orphan = f"bastion_t_{gone.pid}_{secrets.token_hex(6)}"
    ours = new_name()
    for name in (orphan, ours):
        await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        dropped = await PostgresDatabases(POSTGRES_URL).drop_orphans(admin)
        assert orphan in dropped
        assert ours not in dropped
        assert not await _exists(admin, orphan)
        assert await _exists(admin, ours)
    finally:
        for name in (orphan, ours):
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
