"""Tables of the identity domain."""

from __future__ import annotations

from sqlalchemy import Column, Integer, String, Table

from bastion.storage.base import Base
from bastion.storage.columns import UTCDateTime

#: One-time setup tokens. Only the SHA-256 hex digest of a token is stored, never the token.
setup_tokens = Table(
    "setup_tokens",
    Base.metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("consumed_at", UTCDateTime(), nullable=True),
)
