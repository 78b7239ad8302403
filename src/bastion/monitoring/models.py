"""The ``alert_dead_letters`` table: alerts a webhook never accepted, after every retry.

An operator lists them (``GET /v1/admin/alerts/dead-letters``, ``bastion alerts dead-letters``)
to find out what the receiver missed; the alert itself is also in the audit trail. The row names
the webhook, never its URL or secret.
"""

from __future__ import annotations

from sqlalchemy import JSON, Column, Index, Integer, String, Table
from sqlalchemy.dialects.postgresql import JSONB

from bastion.storage.base import Base
from bastion.storage.columns import UTCDateTime

JSONDocument = JSON().with_variant(JSONB(), "postgresql")

alert_dead_letters = Table(
    "alert_dead_letters",
    Base.metadata,
    Column("id", String(36), primary_key=True),
    Column("alert_id", String(36), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("destination", String(64), nullable=False),
    Column("detector", String(32), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("payload", JSONDocument, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("last_error", String(255), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Index("ix_alert_dead_letters_created_at", "created_at"),
)
