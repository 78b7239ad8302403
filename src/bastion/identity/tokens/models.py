"""The ``signing_keys`` table: access-token signing keys, private parts sealed.

``sealed_private_key`` is :func:`bastion.identity.tokens.keys.seal`'s envelope (AES-256-GCM under
a key derived from ``BASTION_SECRET_KEY``, bound to the kid and algorithm): a copy of the table
alone signs nothing.
"""

from __future__ import annotations

from sqlalchemy import Column, String, Table, Text

from bastion.storage.base import Base
from bastion.storage.columns import UTCDateTime

signing_keys = Table(
    "signing_keys",
    Base.metadata,
    Column("kid", String(64), primary_key=True),
    Column("algorithm", String(16), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("not_after", UTCDateTime(), nullable=False),
    Column("retired_at", UTCDateTime(), nullable=True),
    Column("sealed_private_key", Text, nullable=False),
)
