"""Tables of the privacy domain.

``config_fingerprints``: one row per start whose effective settings differ from the previous
one. ``digests`` is a JSON object mapping each setting name to a keyed digest (HMAC-SHA256 under
a key derived from the secret key) of its value: enough to name what changed, never enough to
read a value back, secrets included.
"""

from __future__ import annotations

from sqlalchemy import Column, Integer, String, Table, Text

from bastion.storage.base import Base
from bastion.storage.columns import UTCDateTime

#: Hex HMAC-SHA256.
DIGEST_CHARS = 64

config_fingerprints = Table(
    "config_fingerprints",
    Base.metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("recorded_at", UTCDateTime(), nullable=False),
    Column("fingerprint", String(DIGEST_CHARS), nullable=False),
    Column("digests", Text, nullable=False),
)
