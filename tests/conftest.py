"""Fixtures shared by every test.

``database_url`` runs a test twice: on a SQLite file and on a fresh PostgreSQL database (created
for the test, dropped after). ``database`` is the same, migrated to head: a copy of a database
this test process migrated once (a SQLite file copied; on PostgreSQL, ``CREATE DATABASE ...
TEMPLATE``), so each test does not run every migration again. ``tests/unit/storage/
test_migrate.py`` runs the migrations themselves on empty databases. ``redis_url`` points at
the local Redis. When PostgreSQL or Redis is unreachable those tests skip with the reason shown;
with ``CI=true`` they fail instead, so CI can never pass by skipping.

Servers: ``TEST_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``, used
to create and drop the per-test databases) and ``TEST_REDIS_URL``
(default ``redis://127.0.0.1:6379/0``).
"""

from __future__ import annotations

import asyncio
import atexit
import os
import shutil
import socket
import sqlite3
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from bastion.clock import FrozenClock
from bastion.config.settings import Settings
from bastion.storage import Database
from bastion.storage.migrate import upgrade
from tests.common.pg_databases import PostgresDatabases, Template, new_name

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
TEST_SECRET_KEY = "x" * 48


def _unavailable(server: str, exc: BaseException) -> NoReturn:
    reason = f"{server} is not reachable ({type(exc).__name__}: {exc})"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI=true requires it")
    pytest.skip(reason)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A test that asks for Redis is marked for it, so `-m "not redis"` deselects it.
    for item in items:
        if "redis_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.redis)


#: This process's PostgreSQL databases, reused from test to test (see tests/common/pg_databases).
_POSTGRES = PostgresDatabases(POSTGRES_URL)


@asynccontextmanager
async def _postgres_database() -> AsyncIterator[str]:
    try:
        admin = await asyncpg.connect(POSTGRES_URL, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        _unavailable("PostgreSQL", exc)
    try:
        await _POSTGRES.drop_orphans(admin)
        name = await _POSTGRES.empty_database(admin)
        try:
            url = make_url(POSTGRES_URL).set(drivername="postgresql+asyncpg", database=name)
            yield url.render_as_string(hide_password=False)
        finally:
            await _POSTGRES.release(admin, name, _POSTGRES_TEMPLATE.get("postgres"))
    finally:
        await admin.close()


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database: a SQLite file in tmp_path, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'bastion.db'}"
        return
    async with _postgres_database() as url:
        yield url


#: This process's migrated databases, made on first use: a SQLite file and a PostgreSQL
#: database name (dropped when the process exits).
_TEMPLATES: dict[str, str] = {}


async def _sqlite_template() -> str:
    if "sqlite" not in _TEMPLATES:
        path = Path(tempfile.mkdtemp(prefix="bastion-template-")) / "bastion.db"
        await upgrade(f"sqlite:///{path}")
        with sqlite3.connect(path) as connection:  # an empty WAL: the file alone is the copy
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        connection.close()
        atexit.register(shutil.rmtree, path.parent, ignore_errors=True)
        _TEMPLATES["sqlite"] = str(path)
    return _TEMPLATES["sqlite"]


_POSTGRES_TEMPLATE: dict[str, Template] = {}


def _drop_postgres_databases() -> None:
    """At exit: the template and the pooled databases."""
    names = [*(t.name for t in _POSTGRES_TEMPLATE.values()), *_POSTGRES.pooled()]
    if not names:
        return

    async def drop() -> None:
        admin = await asyncpg.connect(POSTGRES_URL, timeout=5)
        try:
            for name in names:  # each on its own: one that fails leaves the others to drop
                with suppress(asyncpg.PostgresError):
                    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()

    with suppress(OSError, asyncpg.PostgresError):
        asyncio.run(drop())


atexit.register(_drop_postgres_databases)


async def _postgres_template(admin: asyncpg.Connection) -> str:
    if "postgres" not in _POSTGRES_TEMPLATE:
        name = new_name("tpl")
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = make_url(POSTGRES_URL).set(drivername="postgresql+asyncpg", database=name)
        try:
            await upgrade(url.render_as_string(hide_password=False))
            connection = await asyncpg.connect(
                url.set(drivername="postgresql").render_as_string(hide_password=False), timeout=5
            )
            try:
                template = await Template.read(name, connection)
            finally:
                await connection.close()
        except BaseException:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            raise
        _POSTGRES_TEMPLATE["postgres"] = template
    return _POSTGRES_TEMPLATE["postgres"].name


def _copy_private(source: str, path: Path) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # the modes Database gives them
    shutil.copyfile(source, path)
    path.chmod(0o600)


def _sqlite_is_empty(path: Path) -> bool:
    return not path.exists() or path.stat().st_size == 0


async def _migrated_copy(database_url: str) -> None:
    """Make the (empty) database at ``database_url`` a copy of this process's migrated one."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        assert url.database is not None
        _copy_private(await _sqlite_template(), Path(url.database))
        return
    assert url.database is not None
    admin = await asyncpg.connect(POSTGRES_URL, timeout=5)
    try:
        template = await _postgres_template(admin)
        await _POSTGRES.make_migrated(admin, url.database, template)
    finally:
        await admin.close()


async def _is_empty(database_url: str) -> bool:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        return url.database is not None and _sqlite_is_empty(Path(url.database))
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    connection = await asyncpg.connect(dsn, timeout=5)
    try:
        tables = await connection.fetchval(
            "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()"
        )
    finally:
        await connection.close()
    return bool(tables == 0)


async def migrated(database_url: str) -> None:
    """Bring the database at ``database_url`` to head, as ``migrate.upgrade`` does. An empty
    one (a new SQLite file, a fresh PostgreSQL database) becomes a copy of this process's
    migrated one instead: running every migration costs ~0.3 s on SQLite and ~0.5 s on
    PostgreSQL, paid by each app a test starts; the copy takes milliseconds (a file) or ~0.1 s
    (``CREATE DATABASE ... TEMPLATE``). A database with tables is upgraded in place."""
    if await _is_empty(database_url):
        await _migrated_copy(database_url)
    else:
        await upgrade(database_url)


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    """A :class:`Database` migrated to head (SQLite and PostgreSQL)."""
    await _migrated_copy(database_url)
    db = Database(database_url)
    try:
        yield db
    finally:
        await db.dispose()


@pytest.fixture
def redis_url() -> str:
    """The local Redis (the test is marked ``redis``)."""
    parts = urlsplit(REDIS_URL)
    try:
        with socket.create_connection((parts.hostname, parts.port or 6379), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            reply = sock.recv(64)
    except OSError as exc:
        _unavailable("Redis", exc)
    if not reply.startswith(b"+PONG"):
        _unavailable("Redis", ConnectionError(reply.decode("latin-1", "replace").strip()))
    return REDIS_URL


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Test settings: SQLite in tmp_path, unaffected by BASTION_* variables of the shell."""
    for name in list(os.environ):
        if name.startswith("BASTION_"):
            monkeypatch.delenv(name)
    return Settings(env="test", data_dir=tmp_path, secret_key=TEST_SECRET_KEY)


@pytest.fixture
def clock() -> FrozenClock:
    """A clock that stands still until the test moves it."""
    return FrozenClock()
