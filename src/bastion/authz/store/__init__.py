"""The authorization store: stores, immutable model versions, tuples and their changelog.

from bastion.authz.store import SqlAuthzStore

store = SqlAuthzStore(database, clock=clock)
record = await store.create_store("docs")
await store.write(record.id, writes=[Tuple("document:1", "viewer", "user:anne")])
"""

from bastion.authz.store.ids import is_reserved, is_ulid, new_ulid
from bastion.authz.store.records import (
    Change,
    ModelRecord,
    OnDuplicate,
    OnMissing,
    Operation,
    Page,
    StoredTuple,
    StoreRecord,
)
from bastion.authz.store.sql import (
    DEFAULT_MAX_TUPLES_PER_WRITE,
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    SqlAuthzStore,
)

__all__ = [
    "DEFAULT_MAX_TUPLES_PER_WRITE",
    "DEFAULT_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "Change",
    "ModelRecord",
    "OnDuplicate",
    "OnMissing",
    "Operation",
    "Page",
    "SqlAuthzStore",
    "StoreRecord",
    "StoredTuple",
    "is_reserved",
    "is_ulid",
    "new_ulid",
]
