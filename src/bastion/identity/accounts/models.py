"""Tables of accounts: users, their one-time tokens (email verification, password reset) and
their password history (an option, off by default).

Emails are stored as given (``email``, what the user typed, used to send mail) and normalised
(``email_normalized``, NFKC + case fold, unique): two spellings of one address are one account.
Tokens are stored as their SHA-256 digest only (:func:`bastion.crypto.hash_token`).
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, ForeignKey, Index, Integer, String, Table

from bastion.storage.base import Base
from bastion.storage.columns import UTCDateTime

#: RFC 5321 §4.5.3.1: a path is at most 256 octets; 320 leaves room for the display form.
EMAIL_CHARS = 320
DISPLAY_NAME_CHARS = 200
#: The longest encoded password hash accepted (PHC strings are about 100 characters).
PASSWORD_HASH_CHARS = 512
USER_ID_CHARS = 36

users = Table(
    "users",
    Base.metadata,
    Column("id", String(USER_ID_CHARS), primary_key=True),
    Column("email", String(EMAIL_CHARS), nullable=False),
    Column("email_normalized", String(EMAIL_CHARS), nullable=False, unique=True),
    Column("display_name", String(DISPLAY_NAME_CHARS), nullable=False),
    # NULL: no usable password (pending verification, or a reset was forced by an admin).
    Column("password_hash", String(PASSWORD_HASH_CHARS), nullable=True),
    Column("is_admin", Boolean, nullable=False),
    Column("email_verified", Boolean, nullable=False),
    Column("disabled", Boolean, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("password_changed_at", UTCDateTime(), nullable=True),
)

#: Single-use tokens mailed to a user. ``purpose`` is a :class:`TokenPurpose` value;
#: ``new_email`` carries the address an email change switches to; ``password_hash`` the password
#: chosen at registration, which becomes the account's only when its mail is confirmed.
account_tokens = Table(
    "account_tokens",
    Base.metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column(
        "user_id", String(USER_ID_CHARS), ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    ),
    Column("purpose", String(32), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("consumed_at", UTCDateTime(), nullable=True),
    Column("new_email", String(EMAIL_CHARS), nullable=True),
    Column("password_hash", String(PASSWORD_HASH_CHARS), nullable=True),
    Index("ix_account_tokens_user_id", "user_id"),
)

#: Earlier password hashes of a user, newest by ``id``, kept only while the ``history_size``
#: option is on (a compliance option, off by default): old hashes are a liability if leaked.
#: The current password is ``users.password_hash``; this table holds the ones before it.
password_history = Table(
    "password_history",
    Base.metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "user_id", String(USER_ID_CHARS), ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    ),
    Column("password_hash", String(PASSWORD_HASH_CHARS), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Index("ix_password_history_user_id", "user_id"),
)
