"""The ``authz_elevations`` table: requests for a time-limited role, and what became of them.

A row is the request's record (who, which role, how long, why) and its lifecycle; the grant
itself is a conditional tuple in the reserved system store, which the engine evaluates at
every check. ``expiry_recorded`` makes the ``authz:elevation:expired`` event happen once.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Index, Integer, String, Table

from bastion.storage.base import Base
from bastion.storage.columns import UTCDateTime

USER_ID_CHARS = 36
REASON_CHARS = 500

authz_elevations = Table(
    "authz_elevations",
    Base.metadata,
    Column("id", String(32), primary_key=True),
    Column("user_id", String(USER_ID_CHARS), nullable=False),
    Column("role", String(32), nullable=False),
    Column("reason", String(REASON_CHARS), nullable=False),
    Column("duration_seconds", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("requested_at", UTCDateTime(), nullable=False),
    Column("decided_by", String(USER_ID_CHARS), nullable=True),
    Column("decided_at", UTCDateTime(), nullable=True),
    Column("expires_at", UTCDateTime(), nullable=True),
    Column("revoked_by", String(USER_ID_CHARS), nullable=True),
    Column("revoked_at", UTCDateTime(), nullable=True),
    Column("expiry_recorded", Boolean, nullable=False),
    Index("ix_authz_elevations_user_id", "user_id"),
    Index("ix_authz_elevations_status", "status"),
)
