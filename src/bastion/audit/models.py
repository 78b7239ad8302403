"""Audit tables: ``audit_events`` (append-only, chained), its chain head, and checkpoints.

Indexes follow the questions an investigator asks: what happened in a time window, of a given
type, done by an actor, done to a subject, in one request, or from one address (each filter of
:mod:`bastion.audit.query`; ``tests/unit/audit/test_query_plans.py`` checks each plan). The four
on optional columns are partial (rows where the column is set): every event pays an insert into
each index it is in, and most rejected requests have no actor or subject.

The chain (:mod:`bastion.audit.chain`): each event stored since migration 0005 has a ``seq``
(1, 2, 3, ... without gaps) and a ``mac`` over its content and the previous event's ``mac``.
``audit_chain_head`` holds one row: the last ``seq`` and ``mac`` (writers lock it to append, so
concurrent workers build one chain), the *anchor* the chain starts from (genesis, or the signed
checkpoint before a purged range) and ``legacy_max_id``, the highest id written before the
chain existed (those rows are unprotected; any unchained row above it was inserted).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, Integer, String, Table, Text
from sqlalchemy import column as sql_column
from sqlalchemy.dialects.postgresql import JSONB

from bastion.storage.base import Base
from bastion.storage.columns import UTCDateTime

#: SQLite autoincrements only an INTEGER PRIMARY KEY (its 64-bit rowid).
BigIntegerPK = BigInteger().with_variant(Integer(), "sqlite")
JSONDocument = JSON().with_variant(JSONB(), "postgresql")
#: Hex HMAC-SHA256; hex key ids (4 bytes) of the chain key.
MAC_CHARS = 64
KEY_ID_CHARS = 8
HEAD_ROW_ID = 1


def _present(column: str) -> dict[str, Any]:
    """A partial index's condition on both backends: rows where ``column`` is not NULL."""
    condition = sql_column(column).is_not(None)
    return {"sqlite_where": condition, "postgresql_where": condition}


audit_events = Table(
    "audit_events",
    Base.metadata,
    Column("id", BigIntegerPK, primary_key=True, autoincrement=True),
    Column("time", UTCDateTime(), nullable=False),
    Column("type", String(64), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("actor", String(255)),
    Column("subject", String(255)),
    Column("client_ip", String(64)),
    Column("user_agent", String(512)),
    Column("request_id", String(128)),
    Column("reason", String(255)),
    Column("details", JSONDocument, nullable=False),
    Column("seq", BigInteger, nullable=True),
    Column("mac", String(MAC_CHARS), nullable=True),
    Column("key_id", String(KEY_ID_CHARS), nullable=True),
    Index("ix_audit_events_time", "time"),
    Index("ix_audit_events_type_time", "type", "time"),
    # Partial (migration 0012): an event without the column (no actor in a rejected request,
    # no request in a background job) is not inserted into its index; ``column = value``
    # implies ``column IS NOT NULL``, so SQLite and PostgreSQL use these for every filter.
    Index("ix_audit_events_actor_time", "actor", "time", **_present("actor")),
    Index("ix_audit_events_subject_time", "subject", "time", **_present("subject")),
    Index("ix_audit_events_request_id", "request_id", **_present("request_id")),
    Index("ix_audit_events_client_ip_time", "client_ip", "time", **_present("client_ip")),
    Index("uq_audit_events_seq", "seq", unique=True),
)

audit_chain_head = Table(
    "audit_chain_head",
    Base.metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("mac", String(MAC_CHARS), nullable=False),
    Column("anchor_seq", BigInteger, nullable=False),
    Column("anchor_mac", String(MAC_CHARS), nullable=False),
    Column("legacy_max_id", BigInteger, nullable=False),
)

audit_checkpoints = Table(
    "audit_checkpoints",
    Base.metadata,
    Column("id", BigIntegerPK, primary_key=True, autoincrement=True),
    Column("seq", BigInteger, nullable=False),
    Column("mac", String(MAC_CHARS), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("kid", String(64), nullable=False),
    Column("token", Text, nullable=False),
    Column("public_jwk", JSONDocument, nullable=False),
    Column("tag", String(MAC_CHARS), nullable=False),
    Index("ix_audit_checkpoints_seq", "seq"),
)
