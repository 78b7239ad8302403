"""The ``audit_events`` table: one row per security event, append-only.

Indexes follow the questions an investigator asks: what happened in a time window, of a given
type, done by an actor, done to a subject, in one request, or from one address.
"""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, Index, Integer, String, Table
from sqlalchemy.dialects.postgresql import JSONB

from bastion.storage.base import Base
from bastion.storage.columns import UTCDateTime

#: SQLite autoincrements only an INTEGER PRIMARY KEY (its 64-bit rowid).
BigIntegerPK = BigInteger().with_variant(Integer(), "sqlite")
JSONDocument = JSON().with_variant(JSONB(), "postgresql")

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
    Index("ix_audit_events_time", "time"),
    Index("ix_audit_events_type_time", "type", "time"),
    Index("ix_audit_events_actor_time", "actor", "time"),
    Index("ix_audit_events_subject_time", "subject", "time"),
    Index("ix_audit_events_request_id", "request_id"),
    Index("ix_audit_events_client_ip_time", "client_ip", "time"),
)
