"""The database handle: one async engine and session factory per process.

SQLite (the default, a file in ``data_dir``) and PostgreSQL (``postgresql+asyncpg``) are
supported. SQLite runs on the ``sqlite+inline`` driver (:mod:`bastion.storage.sqlite_inline`:
the stdlib ``sqlite3`` called on the event loop's thread, with an in-process write gate and
busy retries that never sleep inside SQLite; WAL checkpoints run in a worker thread, see
:mod:`bastion.storage.wal`); ``sqlite+aiosqlite`` (a worker thread per connection) is used when
a URL names it.

Every query goes through SQLAlchemy with bound parameters (see
``tests/unit/storage/test_no_string_sql.py``); the engine hides bound values from its error
messages so a failing statement cannot copy personal data or secrets into a log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import event, select
from sqlalchemy.engine import URL, Connection, Engine, ExceptionContext, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, InvalidatePoolError, SQLAlchemyError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import StaticPool
from sqlalchemy.util.concurrency import greenlet_spawn

from bastion.storage import sqlite_inline
from bastion.storage.errors import StorageDisconnected, StorageUnavailable
from bastion.storage.wal import INLINE_WAL_PRAGMA, WalCheckpointer

if TYPE_CHECKING:
    from bastion.config.settings import Settings

#: Drivers used when a URL names only the database ("postgresql://", "sqlite://").
_ASYNC_DRIVERS = {
    "sqlite": f"sqlite+{sqlite_inline.DRIVER}",
    "postgresql": "postgresql+asyncpg",
}

#: WAL lets readers run while one writer writes; foreign keys are off by default in SQLite;
#: busy_timeout makes a writer wait for the lock instead of failing at once; NORMAL is durable
#: across application crashes in WAL mode (only an OS crash may lose the last transactions).
SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=5000",
    "PRAGMA synchronous=NORMAL",
)

#: The same for ``sqlite+inline`` connections, but SQLite itself never waits for a lock: the
#: driver retries a busy statement with ``asyncio.sleep`` for up to the same 5 s, so the event
#: loop never sleeps inside SQLite (see :mod:`bastion.storage.sqlite_inline`).
INLINE_SQLITE_PRAGMAS = tuple(
    "PRAGMA busy_timeout=0" if pragma.startswith("PRAGMA busy_timeout") else pragma
    for pragma in SQLITE_PRAGMAS
)

_T = TypeVar("_T")
_log = logging.getLogger(__name__)

#: Bound on connecting to PostgreSQL and on a readiness ping, so a dead database fails fast.
CONNECT_TIMEOUT_SECONDS = 5.0

#: A pooled asyncpg connection idle (checked in) for longer than this is pinged before it is
#: handed out again; one used more recently is handed out unless its driver saw the server
#: close it (see :class:`_LivenessCheck`).
PING_AFTER_IDLE_SECONDS = 10.0


def normalize_url(url: str | URL) -> URL:
    """Parse ``url``, choosing the async driver when only the backend is named."""
    parsed = make_url(url)
    if parsed.drivername == "postgres":  # the Heroku-style alias SQLAlchemy does not accept
        parsed = parsed.set(drivername="postgresql")
    driver = _ASYNC_DRIVERS.get(parsed.drivername)
    return parsed.set(drivername=driver) if driver else parsed


def _sqlite_file(url: URL) -> Path | None:
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def _prepare_sqlite_file(path: Path) -> None:
    # The database holds audit records and credential hashes: other local users must not read
    # it. The directory is created 0700 and the file 0600; SQLite gives the -wal and -shm files
    # the database file's mode.
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists():
        path.touch(mode=0o600)


def _set_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    inline = isinstance(dbapi_connection, sqlite_inline.InlineConnection)
    cursor = dbapi_connection.cursor()
    try:
        for pragma in INLINE_SQLITE_PRAGMAS if inline else SQLITE_PRAGMAS:
            cursor.execute(pragma)
    finally:
        cursor.close()


class Database:
    """An async engine and its session factory.

    ``session()`` is a unit of work: it commits when the block exits normally and rolls back
    when it raises. ``ping()`` raises :class:`StorageUnavailable` when the database cannot be
    reached. ``dispose()`` closes every pooled connection (after a last WAL checkpoint of an
    inline SQLite file). ``checkpointer`` checkpoints an inline SQLite file's WAL off the
    event loop (None for other databases).
    """

    def __init__(self, url: str | URL) -> None:
        self.url = normalize_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        self.checkpointer: WalCheckpointer | None = None
        options: dict[str, Any] = {"hide_parameters": True}
        if self.is_sqlite:
            path = _sqlite_file(self.url)
            if path is None:
                # An in-memory database lives in one connection: share it across sessions.
                options["poolclass"] = StaticPool
            else:
                _prepare_sqlite_file(path)
                if self.url.get_driver_name() == sqlite_inline.DRIVER:
                    self.checkpointer = WalCheckpointer(path)
        else:
            # asyncpg: Bastion's own check at checkout (_LivenessCheck), not SQLAlchemy's
            # pre-ping (three round trips each checkout). Other drivers keep the pre-ping.
            options["pool_pre_ping"] = self.url.get_driver_name() != "asyncpg"
            options["connect_args"] = {"timeout": CONNECT_TIMEOUT_SECONDS}
        self.engine: AsyncEngine = create_async_engine(self.url, **options)
        if not self.is_sqlite:
            _LivenessCheck.install(self.engine.sync_engine)
            event.listen(self.engine.sync_engine, "handle_error", _lost_is_unavailable)
            event.listen(self.engine.sync_engine, "do_connect", _unreachable_is_unavailable)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _set_sqlite_pragmas)
        if self.checkpointer is not None:
            event.listen(self.engine.sync_engine, "connect", self._hand_checkpoints_over)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        self._reads_outside_transactions = self.url.get_driver_name() == "asyncpg"
        #: Inline SQLite files keep one connection checked out for :meth:`transaction`
        #: (see :class:`_KeptConnection`); other databases check one out per unit of work.
        self._kept: _KeptConnection | None = (
            _KeptConnection(self.engine.sync_engine) if self.checkpointer is not None else None
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        """The database named by the settings (SQLite in ``data_dir`` by default)."""
        return cls(settings.effective_database_url)

    def __repr__(self) -> str:
        # URL's repr masks the password.
        return f"Database({self.url!r})"

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session in a transaction: committed on normal exit, rolled back on error."""
        async with self.sessionmaker.begin() as session:
            yield session

    async def read(self, work: Callable[[Connection], _T]) -> _T:
        """``work(connection)`` on a pooled connection (SQLAlchemy's synchronous API, no
        transaction kept: rolled back on return), checked out and returned within one call.

        Same statements and pool as ``engine.connect()``, but the checkout, every statement and
        the return run in one greenlet, not one each: a hot path's short unit of work pays for
        one switch into SQLAlchemy's synchronous core instead of several. ``work`` must not
        block: the driver's own waits (the pool, asyncpg, the inline driver's gate) suspend
        through the greenlet as they do under ``AsyncConnection``. On an inline SQLite file, on
        the connection this database keeps checked out when it is free (:class:`_KeptConnection`),
        rolled back on return as the pool resets a connection it gets back.

        ``work`` only reads. On PostgreSQL (asyncpg) it runs outside a transaction: no BEGIN
        and no ROLLBACK, two of a point read's three round trips. Each statement still runs
        on its own snapshot, as it does in a READ COMMITTED transaction; a write would commit
        at once (use :meth:`transaction`).
        """
        if self._kept is not None:
            return await greenlet_spawn(self._kept.read, work)
        if self._reads_outside_transactions:
            return await greenlet_spawn(_outside_transaction, self.engine.sync_engine, work)
        return await greenlet_spawn(_on_connection, self.engine.sync_engine, work)

    async def transaction(self, work: Callable[[Connection], _T]) -> _T:
        """:meth:`read` inside a transaction: committed when ``work`` returns, rolled back
        when it raises (as ``engine.begin()``). On an inline SQLite file, on the connection
        this database keeps checked out when it is free (:class:`_KeptConnection`)."""
        kept = self._kept
        if kept is None:
            return await greenlet_spawn(_in_transaction, self.engine.sync_engine, work)
        holding = self.checkpointer.holding  # type: ignore[union-attr] # kept: a checkpointer
        if holding is not None and holding.get_loop() is asyncio.get_running_loop():
            # A WAL checkpoint waits for or holds the write gate (for at most twice
            # MAX_GATE_HOLD_SECONDS; a few milliseconds as a rule). Wait for it here, holding
            # no connection: the first unit of work to arrive would take the kept connection
            # and wait on the gate with it, and every later one would check out a pooled
            # connection to wait with (up to the pool's size), each paying the checkout and a
            # page cache made stale by the others' commits (SQLite starts it over when another
            # connection committed: ~18 page reads a refresh rotation at 32 concurrent
            # rotations, measured). And once writers queue on the gate, each newcomer meets
            # it held and queues too: such a queue could last as long as the load. The
            # shield: one waiter's cancellation must not cancel the others' wait.
            await asyncio.shield(holding)
        return await greenlet_spawn(kept.transaction, work)

    def try_unit(self, work: Callable[[sqlite_inline.InlineUnit], _T | None]) -> _T | None:
        """``work`` as one write transaction run synchronously (no greenlet, no await), on an
        inline SQLite file's kept connection, when nothing has to wait: see
        :meth:`~bastion.storage.sqlite_inline.InlineConnection.try_unit`. None when it did
        not run or wrote nothing (rolled back): always on other databases, and whenever the
        kept connection is in use or not made yet, a WAL checkpoint holds the write gate,
        another writer holds or waits for it, or the database answered an error; the caller
        then runs its ordinary :meth:`transaction`, which starts over."""
        kept = self._kept
        return kept.try_unit(work) if kept is not None else None

    def try_read(self, work: Callable[[sqlite_inline.InlineUnit], _T | None]) -> _T | None:
        """``work``'s reads run synchronously (no greenlet, no await) on an inline SQLite
        file's kept connection, when nothing has to wait: see
        :meth:`~bastion.storage.sqlite_inline.InlineConnection.try_read`. None when it did not
        run or ``work`` returned None: always on other databases, and whenever the kept
        connection is in use or not made yet, a statement may write, or the database answered
        an error; the caller then runs its ordinary :meth:`read`."""
        kept = self._kept
        return kept.try_read(work) if kept is not None else None

    async def ping(self) -> None:
        """Run a trivial query. Raises StorageUnavailable when the database does not answer."""
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_SECONDS), self.engine.connect() as conn:
                await conn.execute(select(1))
        except (SQLAlchemyError, OSError) as exc:  # TimeoutError is an OSError
            raise StorageUnavailable from exc

    def _hand_checkpoints_over(self, dbapi_connection: Any, _record: Any) -> None:
        # SQLite must not checkpoint inside a commit on the loop thread: the checkpointer does it
        # in a worker thread, counting the writes the driver reports.
        if self.checkpointer is None or not isinstance(
            dbapi_connection, sqlite_inline.InlineConnection
        ):
            return
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(INLINE_WAL_PRAGMA)
        finally:
            cursor.close()
        dbapi_connection.on_write = self.checkpointer.wrote

    async def dispose(self) -> None:
        if self._kept is not None:
            await greenlet_spawn(self._kept.close)
        if self.checkpointer is not None:
            await self.checkpointer.close()
        await self.engine.dispose()


class _LivenessCheck:
    """Hands out a pooled asyncpg connection only if it is alive, without SQLAlchemy's
    pre-ping (BEGIN, a query, ROLLBACK: three round trips on every checkout, half of a point
    read's).

    A connection the server ended (restart, ``pg_terminate_backend``, ``idle_session_timeout``)
    is closed in asyncpg as soon as the event loop reads the server's goodbye, so asking the
    driver costs nothing. A connection idle for longer than :data:`PING_AFTER_IDLE_SECONDS` is
    also pinged, as the pre-ping did, since a network path can fail silently. A dead one is
    replaced by the pool (``DisconnectionError``: a new connection, the checkout goes on).
    What this does not see (the server's goodbye not read yet, or a connection lost while in
    use) fails the unit of work with :class:`StorageDisconnected`, a 503, and the pool gives
    that connection up: as a connection lost mid-use did with the pre-ping."""

    __slots__ = ("_dialect",)

    _IDLE_SINCE = "bastion_idle_since"

    def __init__(self, engine: Engine) -> None:
        self._dialect = engine.dialect

    @classmethod
    def install(cls, engine: Engine) -> None:
        if engine.pool._pre_ping:  # noqa: SLF001 - a driver this check does not know
            return
        check = cls(engine)
        event.listen(engine, "checkout", check.checkout)
        event.listen(engine, "checkin", check.checkin)

    def checkin(self, _dbapi_connection: Any, record: Any) -> None:
        record.info[self._IDLE_SINCE] = time.monotonic()

    def checkout(self, dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        driver = getattr(dbapi_connection, "_connection", None)  # the asyncpg connection
        is_closed = getattr(driver, "is_closed", None)
        if is_closed is not None and is_closed():
            raise DisconnectionError  # this one only: the others are checked as they go out
        idle_since = record.info.get(self._IDLE_SINCE)  # none: new since the pool made it
        idle = idle_since is not None and time.monotonic() - idle_since > PING_AFTER_IDLE_SECONDS
        if is_closed is None or idle:
            try:
                self._dialect.do_ping(dbapi_connection)
            except Exception as exc:  # any failure: replaced, as the pre-ping does
                raise InvalidatePoolError from exc


def _lost_is_unavailable(context: ExceptionContext) -> BaseException | None:
    """A connection lost while in use is :class:`StorageDisconnected` (a 503, still a
    ``DBAPIError``); SQLAlchemy invalidates the connection as before. A failed pre-ping
    (drivers other than asyncpg) is left to the pool, which replaces the connection."""
    error = context.sqlalchemy_exception
    if context.is_disconnect and not context.is_pre_ping and isinstance(error, DBAPIError):
        return StorageDisconnected(error)
    return None


def _unreachable_is_unavailable(
    dialect: Any, _record: Any, cargs: list[Any], cparams: dict[str, Any]
) -> Any:
    """Connect as the dialect does; a server that cannot be reached (refused, unreachable, or
    no answer within ``CONNECT_TIMEOUT_SECONDS``) is :class:`StorageUnavailable`, a 503, not a
    500. The driver raises these as ``OSError``/``TimeoutError``, not as a DBAPI error, so
    SQLAlchemy's ``handle_error`` never sees them: a pool checkout that had to open a new
    connection on a loaded or failing server surfaced as an unhandled error (seen in CI:
    asyncpg's connect timed out under load, and the login was answered 500)."""
    try:
        return dialect.connect(*cargs, **cparams)
    except OSError as exc:  # TimeoutError and ConnectionError are OSErrors
        raise StorageUnavailable from exc


def _on_connection(engine: Engine, work: Callable[[Connection], _T]) -> _T:
    with engine.connect() as connection, sqlite_inline.direct(connection):
        return work(connection)


def _outside_transaction(engine: Engine, work: Callable[[Connection], _T]) -> _T:
    # AUTOCOMMIT: asyncpg's adapter sends no BEGIN, so the return has nothing to roll back.
    # Set on this checkout only, locally (no round trip); the pool restores the default
    # isolation level when the connection comes back.
    with engine.connect() as connection:
        return work(connection.execution_options(isolation_level="AUTOCOMMIT"))


def _in_transaction(engine: Engine, work: Callable[[Connection], _T]) -> _T:
    with engine.connect() as connection, sqlite_inline.direct(connection), connection.begin():
        return work(connection)


class _KeptConnection:
    """One pooled connection of an inline SQLite file, kept checked out between
    :meth:`Database.transaction` calls: the checkout and the check-in (the pool's bookkeeping,
    its reset rollback) are about a fifth of a short write transaction's cost.

    The same connection and transaction handling as a checkout (``begin()``: committed on
    return, rolled back on error), except the pool's round trip. A transaction on it always
    ends (commit or rollback) before it is free again, so between transactions it holds no
    SQLite lock, no snapshot and no write gate. It is used only when free: while a unit of work
    on it waits (for the write gate, or backing off from a busy database), another runs on a
    pooled connection as before. It is given up (closed, a new one checked out next time) when
    SQLAlchemy invalidated it, and belongs to the event loop it was made in (the inline
    driver's write gate is per loop): other loops use the pool. Inline SQLite only: other
    drivers keep the pool's checks at checkout (PostgreSQL's pre-ping)."""

    __slots__ = ("_busy", "_connection", "_engine", "_loop")

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._connection: Connection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._busy = False

    def transaction(self, work: Callable[[Connection], _T]) -> _T:
        """Inside a greenlet: ``work`` in a transaction on the kept connection if it is free,
        else on a pooled one (:func:`_in_transaction`)."""
        connection = self._take()
        if connection is None:
            return _in_transaction(self._engine, work)
        self._busy = True
        try:
            with sqlite_inline.direct(connection), connection.begin():
                return work(connection)
        finally:
            self._busy = False

    def try_unit(self, work: Callable[[sqlite_inline.InlineUnit], _T | None]) -> _T | None:
        """On the loop's thread (no greenlet): ``work`` on the kept connection's inline
        connection if it is free, made, valid and of this loop, else None."""
        return self._try(work, write=True)

    def try_read(self, work: Callable[[sqlite_inline.InlineUnit], _T | None]) -> _T | None:
        """:meth:`try_unit` for reads (:meth:`InlineConnection.try_read`)."""
        return self._try(work, write=False)

    def _try(
        self, work: Callable[[sqlite_inline.InlineUnit], _T | None], *, write: bool
    ) -> _T | None:
        connection = self._connection
        if (
            self._busy
            or connection is None
            or connection.invalidated
            or connection.closed
            or self._loop is not asyncio.get_running_loop()
            or connection.in_transaction()
        ):
            return None
        inline: Any = connection.connection.dbapi_connection
        if not isinstance(inline, sqlite_inline.InlineConnection):
            return None
        self._busy = True
        try:
            if write:
                return inline.try_unit(work, connection.dialect)
            return inline.try_read(work, connection.dialect)
        finally:
            self._busy = False

    def _take(self) -> Connection | None:
        """The kept connection for a unit of work in this loop if it is free (replaced when
        SQLAlchemy gave it up), else None: the caller uses a pooled one."""
        if self._busy:
            return None
        connection = self._connection
        loop = asyncio.get_running_loop()
        if connection is None or connection.invalidated or connection.closed:
            self._close()
            connection = self._connection = self._engine.connect()
            self._loop = loop
        elif self._loop is not loop:
            return None
        return connection

    def read(self, work: Callable[[Connection], _T]) -> _T:
        """Inside a greenlet: ``work`` on the kept connection if it is free, else on a pooled
        one (:func:`_on_connection`). Ended as the pool ends a connection it gets back: any
        transaction rolled back (SQLAlchemy's, and the driver's, which a statement run on the
        DBAPI connection itself may have begun), so no snapshot or lock outlives the call. If
        that rollback fails, the connection is given up."""
        connection = self._take()
        if connection is None:
            return _on_connection(self._engine, work)
        self._busy = True
        try:
            with sqlite_inline.direct(connection):
                try:
                    return work(connection)
                finally:
                    self._reset(connection)
        finally:
            self._busy = False

    def _reset(self, connection: Connection) -> None:
        # As the pool's check-in: a failing reset is logged, not raised, and the connection is
        # not used again.
        if connection.invalidated or connection.closed:
            self._close()
            return
        try:
            connection.rollback()
            proxied = connection.connection
            dbapi: Any = proxied.dbapi_connection
            if dbapi is not None and dbapi.in_transaction:
                connection.dialect.do_rollback(proxied)
        except Exception:  # noqa: BLE001 - as the pool's check-in: logged, connection given up
            _log.exception("resetting the kept SQLite connection failed; it is given up")
            with contextlib.suppress(Exception):
                connection.invalidate()
            self._close()

    def _close(self) -> None:
        connection, self._connection, self._loop = self._connection, None, None
        if connection is not None:
            connection.close()

    def close(self) -> None:
        """Return the kept connection to the pool (inside a greenlet; before the engine is
        disposed)."""
        if not self._busy:
            self._close()
