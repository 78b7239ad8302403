"""Storage: the database handle, the shared table metadata and the migrations.

from bastion.storage import Database

database = Database.from_settings(settings)
async with database.session() as session:
    ...
"""

from bastion.storage.base import Base
from bastion.storage.database import Database
from bastion.storage.errors import MigrationError, StorageError, StorageUnavailable

__all__ = ["Base", "Database", "MigrationError", "StorageError", "StorageUnavailable"]
