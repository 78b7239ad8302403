"""Tables of the authorization store: stores, model versions, tuples and the changelog.

Every table is keyed by ``store_id`` first: stores never see each other's rows. Indexes follow
the engine's access patterns (:class:`bastion.authz.tuples.TupleSource`): tuples of one
``object#relation`` (the unique key's prefix) and tuples of one ``object_type#relation@user``
(``ix_authz_tuples_by_user``); the changelog is read in ``id`` order per store.

Deleting a store deletes its models, tuples and changes (``ON DELETE CASCADE``).
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    ForeignKey,
    Index,
    SmallInteger,
    String,
    Table,
    UniqueConstraint,
)

from bastion.audit.models import BigIntegerPK, JSONDocument
from bastion.storage.base import Base
from bastion.storage.columns import UTCDateTime

#: OpenFGA's limits: ids are ULIDs (26 chars); objects 256, users 512, relations 50,
#: condition names 256 (validated at the API before anything reaches the database).
ID_CHARS = 26
NAME_CHARS = 256
TYPE_CHARS = 254
OBJECT_CHARS = 256
RELATION_CHARS = 50
USER_CHARS = 512
CONDITION_CHARS = 256

#: Changelog operations (OpenFGA's ``TUPLE_OPERATION_WRITE`` / ``TUPLE_OPERATION_DELETE``).
OP_WRITE = 0
OP_DELETE = 1


def _store_fk() -> ForeignKey:
    return ForeignKey("authz_stores.id", ondelete="CASCADE")


authz_stores = Table(
    "authz_stores",
    Base.metadata,
    Column("id", String(ID_CHARS), primary_key=True),
    Column("name", String(NAME_CHARS), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

authz_models = Table(
    "authz_models",
    Base.metadata,
    # ``seq`` orders versions (the latest has the highest); ``id`` is the public ULID.
    Column("seq", BigIntegerPK, primary_key=True, autoincrement=True),
    Column("id", String(ID_CHARS), nullable=False, unique=True),
    Column("store_id", String(ID_CHARS), _store_fk(), nullable=False),
    Column("schema_version", String(16), nullable=False),
    Column("model", JSONDocument, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Index("ix_authz_models_store_id_seq", "store_id", "seq"),
)

authz_tuples = Table(
    "authz_tuples",
    Base.metadata,
    # ``id`` orders Read pages (a keyset continuation token); the key is the unique constraint.
    Column("id", BigIntegerPK, primary_key=True, autoincrement=True),
    Column("store_id", String(ID_CHARS), _store_fk(), nullable=False),
    Column("object_type", String(TYPE_CHARS), nullable=False),
    Column("object", String(OBJECT_CHARS), nullable=False),
    Column("relation", String(RELATION_CHARS), nullable=False),
    Column("user", String(USER_CHARS), nullable=False),
    Column("condition_name", String(CONDITION_CHARS), nullable=True),
    Column("condition_context", JSONDocument, nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    UniqueConstraint("store_id", "object", "relation", "user", name="uq_authz_tuples_store_id_key"),
    Index("ix_authz_tuples_by_user", "store_id", "object_type", "relation", "user"),
    Index("ix_authz_tuples_user", "store_id", "user"),
)

authz_changes = Table(
    "authz_changes",
    Base.metadata,
    # Per store, ids grow in commit order: writers of a store are serialized on its row
    # (see SqlAuthzStore.write), so a reader polling ``id > last`` never skips a change.
    Column("id", BigIntegerPK, primary_key=True, autoincrement=True),
    Column("store_id", String(ID_CHARS), _store_fk(), nullable=False),
    Column("operation", SmallInteger, nullable=False),
    Column("object_type", String(TYPE_CHARS), nullable=False),
    Column("object", String(OBJECT_CHARS), nullable=False),
    Column("relation", String(RELATION_CHARS), nullable=False),
    Column("user", String(USER_CHARS), nullable=False),
    Column("condition_name", String(CONDITION_CHARS), nullable=True),
    Column("condition_context", JSONDocument, nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Index("ix_authz_changes_store_id_id", "store_id", "id"),
    Index("ix_authz_changes_store_id_type_id", "store_id", "object_type", "id"),
)
