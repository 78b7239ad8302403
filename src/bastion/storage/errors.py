"""Errors of the storage layer.

    BastionError
    └── StorageError                 500 storage_error
        ├── StorageUnavailable       503 storage_unavailable   (cannot reach the database)
        └── MigrationError           500 storage_migration_failed

Messages never carry the driver's text: it can hold SQL, bound values or connection strings.
The original exception stays chained (``raise ... from exc``) for the operator's traceback.
"""

from __future__ import annotations

from bastion.errors import BastionError


class StorageError(BastionError):
    code = "storage_error"
    status = 500
    title = "Storage error"


class StorageUnavailable(StorageError):
    code = "storage_unavailable"
    status = 503
    title = "The database is unavailable"


class MigrationError(StorageError):
    code = "storage_migration_failed"
    status = 500
    title = "The database migration failed"
