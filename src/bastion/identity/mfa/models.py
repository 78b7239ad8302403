"""Tables of multi-factor authentication: TOTP authenticators, recovery codes, login challenges.

* ``mfa_totp``: one authenticator app per user. The secret is sealed at rest
  (:class:`~bastion.crypto.EnvelopeCipher`, bound to the user id). ``activated_at`` is NULL while
  the enrollment waits for its first correct code. ``last_step`` is the RFC 6238 time step of
  the last accepted code: a code is accepted only by a conditional UPDATE that raises it, so a
  code (or an older one) is never accepted twice, whichever worker sees it.
* ``mfa_recovery_codes``: single-use codes, stored as SHA-256 digests (each has 100 random bits:
  a fast hash is safe, see :mod:`bastion.crypto.tokens`); ``used_at`` set once.
* ``mfa_challenges``: the short-lived, single-use proof that a login's password was right,
  stored as the digest of an opaque ``bst_mfa_`` token; completing the login consumes it.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, ForeignKey, Index, Integer, String, Table, Text

from bastion.audit.models import BigIntegerPK
from bastion.identity.accounts.models import USER_ID_CHARS
from bastion.storage.base import Base
from bastion.storage.columns import UTCDateTime

__all__ = ["mfa_challenges", "mfa_recovery_codes", "mfa_totp"]

HASH_CHARS = 64
TRANSPORT_CHARS = 16

mfa_totp = Table(
    "mfa_totp",
    Base.metadata,
    Column(
        "user_id",
        String(USER_ID_CHARS),
        ForeignKey("users.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("secret_sealed", Text, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("activated_at", UTCDateTime(), nullable=True),
    Column("last_step", BigInteger, nullable=True),
)

mfa_recovery_codes = Table(
    "mfa_recovery_codes",
    Base.metadata,
    Column("id", BigIntegerPK, primary_key=True, autoincrement=True),
    Column(
        "user_id", String(USER_ID_CHARS), ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    ),
    Column("code_hash", String(HASH_CHARS), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("used_at", UTCDateTime(), nullable=True),
    Index("ix_mfa_recovery_codes_user_id", "user_id"),
)

mfa_challenges = Table(
    "mfa_challenges",
    Base.metadata,
    Column("id", BigIntegerPK, primary_key=True, autoincrement=True),
    Column("token_hash", String(HASH_CHARS), nullable=False, unique=True),
    Column(
        "user_id", String(USER_ID_CHARS), ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    ),
    Column("transport", String(TRANSPORT_CHARS), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("used_at", UTCDateTime(), nullable=True),
    Column("failures", Integer, nullable=False),
    Index("ix_mfa_challenges_user_id", "user_id"),
)
