"""Errors of the storage layer.

    BastionError
    └── StorageError                 500 storage_error
        ├── StorageUnavailable       503 storage_unavailable   (cannot reach the database; shown)
        │   └── StorageDisconnected  503 storage_unavailable   (a connection lost while in use)
        └── MigrationError           500 storage_migration_failed

Messages never carry the driver's text: it can hold SQL, bound values or connection strings.
The original exception stays chained (``raise ... from exc``) for the operator's traceback.
"""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError

from bastion.errors import BastionError


class StorageError(BastionError):
    code = "storage_error"
    status = 500
    title = "Storage error"


class StorageUnavailable(StorageError):
    """The database did not answer. Shown to clients as it is (``expose``): a transient
    outage they may retry, which a masked 500 would hide; the title names no internals."""

    code = "storage_unavailable"
    status = 503
    expose = True
    title = "The service is temporarily unavailable"


class MigrationError(StorageError):
    code = "storage_migration_failed"
    status = 500
    title = "The database migration failed"


class StorageDisconnected(StorageUnavailable, DBAPIError):  # type: ignore[misc]
    """The connection to the database was lost while in use (the server ended it, or the
    network did): raised by the engine in place of SQLAlchemy's error, which it still is (a
    ``DBAPIError`` with ``connection_invalidated`` set and the driver's error as ``orig``), so
    code that handles database errors handles it as before; a request it reaches is answered
    503, as :class:`StorageUnavailable`.

    The pool has given the connection up by then: the next unit of work gets a new one. The
    failed unit of work was rolled back by the server, unless the connection was lost during
    its COMMIT (then, as with any lost connection, its outcome is unknown)."""

    def __init__(self, error: DBAPIError) -> None:
        # Not BastionError's __init__ (its super() is DBAPIError's here), nor DBAPIError's (it
        # would format the driver's message into ours): the attributes of both, set here.
        self.detail = self.title
        Exception.__init__(self, self.detail)
        self.statement = error.statement
        self.params = error.params
        self.orig = error.orig
        self.hide_parameters = error.hide_parameters
        self.ismulti = error.ismulti
        self.connection_invalidated = True

    def __str__(self) -> str:
        # Never the driver's text (SQL, bound values): the original stays chained.
        return self.detail
