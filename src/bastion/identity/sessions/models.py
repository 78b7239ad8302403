"""Tables of sessions: one row per login, and the chain of refresh tokens of each session.

A refresh token is stored as its SHA-256 digest. A token issued by a rotation is kept *sealed*
in its own row too (``successor_sealed``: encrypted under a key derived from the secret key,
bound to its parent's digest) until it is used; when a token is rotated, ``used_at`` is set and
``successor_hash`` names its successor's row. So a concurrent retry of the same token within the
short retry grace gets the same successor (see :mod:`bastion.identity.sessions.services`). Both
live in the rows a rotation writes anyway (the token used, the successor inserted): it writes no
third row (migration 0014; the sealed copy used to sit in the parent's row, erased by a third
write).
"""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, String, Table, Text, text

from bastion.audit.models import BigIntegerPK, JSONDocument
from bastion.identity.accounts.models import USER_ID_CHARS
from bastion.storage.base import Base
from bastion.storage.columns import UTCDateTime

SESSION_ID_CHARS = 36
MAX_IP_CHARS = 64
MAX_USER_AGENT_CHARS = 512

sessions = Table(
    "sessions",
    Base.metadata,
    Column("id", String(SESSION_ID_CHARS), primary_key=True),
    Column(
        "user_id", String(USER_ID_CHARS), ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    ),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("last_seen_at", UTCDateTime(), nullable=False),
    Column("absolute_expires_at", UTCDateTime(), nullable=False),
    Column("ip", String(MAX_IP_CHARS), nullable=True),
    Column("user_agent", String(MAX_USER_AGENT_CHARS), nullable=True),
    Column("amr", JSONDocument, nullable=False),
    Column("acr", String(16), nullable=False),
    Column("transport", String(16), nullable=False),
    Column("revoked_at", UTCDateTime(), nullable=True),
    Column("revoke_reason", String(64), nullable=True),
    # The last time the user proved who they are in this session (login, or a step-up
    # re-authentication, see bastion.identity.mfa.stepup); NULL means created_at.
    Column("auth_time", UTCDateTime(), nullable=True),
    Index("ix_sessions_user_id", "user_id"),
    Index("ix_sessions_revoked_at", "revoked_at"),
    # A user's live sessions, newest first: what a login's eviction beyond the per-user limit
    # reads (``_statements.EVICT_BEYOND_LIMIT``). Partial, so the work stays bounded by the
    # limit however many ended sessions the user has piled up (ix_sessions_user_id alone made
    # every login scan all of them, and login cost grew with the user's history).
    # ``absolute_expires_at`` and ``revoked_at`` (always NULL here) last: the eviction's "not
    # expired, not revoked" tests are answered from the index, without reading each live
    # session's row (migration 0013; SQLite 3.40 needs the partial index's own column too).
    Index(
        "ix_sessions_user_live",
        "user_id",
        "created_at",
        "id",
        "absolute_expires_at",
        "revoked_at",
        sqlite_where=text("revoked_at IS NULL"),
        postgresql_where=text("revoked_at IS NULL"),
    ),
)

refresh_tokens = Table(
    "refresh_tokens",
    Base.metadata,
    Column("id", BigIntegerPK, primary_key=True, autoincrement=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column(
        "session_id",
        String(SESSION_ID_CHARS),
        ForeignKey("sessions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("parent_hash", String(64), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("used_at", UTCDateTime(), nullable=True),
    # Sealed copy of this token while it is unused, if a rotation issued it (see above).
    Column("successor_sealed", Text, nullable=True),
    Index("ix_refresh_tokens_session_id", "session_id"),
    # Once used: the digest of the successor the rotation issued (its row holds it sealed).
    Column("successor_hash", String(64), nullable=True),
)
