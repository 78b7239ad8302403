"""Tables of WebAuthn: the passkeys of each account, and the challenges of open ceremonies.

A credential row keeps what verification needs (the credential id, the COSE public key, the
last sign count) and what the owner sees (a name, when it was added and last used). The
public key is public: storing it in clear is safe.

A challenge row is one open ceremony. It is looked up by the SHA-256 digest of the ceremony
handle given to the client (:func:`bastion.crypto.hash_token`), so a database read does not
yield a usable handle; it is consumed by the one ``UPDATE`` that checks it is unused and
unexpired (single use that holds across workers), and bound to a user (registration, second
factor) or to nobody (a passwordless login, bound to its anonymous handle alone).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Table,
    Text,
)

from bastion.audit.models import JSONDocument
from bastion.identity.accounts.models import USER_ID_CHARS
from bastion.storage.base import Base
from bastion.storage.columns import UTCDateTime

__all__ = [
    "CREDENTIAL_NAME_CHARS",
    "MAX_CREDENTIAL_ID_BYTES",
    "webauthn_challenges",
    "webauthn_credentials",
]

#: WebAuthn §5.1: a credential id is at most 1023 bytes.
MAX_CREDENTIAL_ID_BYTES = 1023
CREDENTIAL_NAME_CHARS = 64
PASSKEY_ID_CHARS = 36

webauthn_credentials = Table(
    "webauthn_credentials",
    Base.metadata,
    Column("id", String(PASSKEY_ID_CHARS), primary_key=True),
    Column(
        "user_id", String(USER_ID_CHARS), ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    ),
    Column("credential_id", LargeBinary(), nullable=False, unique=True),
    Column("public_key", LargeBinary(), nullable=False),
    Column("sign_count", BigInteger(), nullable=False),
    Column("name", String(CREDENTIAL_NAME_CHARS), nullable=False),
    Column("aaguid", String(36), nullable=False),
    Column("transports", JSONDocument, nullable=False),
    # Backup eligible (a synced, multi-device passkey): amr "swk" rather than "hwk".
    Column("backup_eligible", Boolean(), nullable=False),
    Column("backed_up", Boolean(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("last_used_at", UTCDateTime(), nullable=True),
    Index("ix_webauthn_credentials_user_id", "user_id"),
)

webauthn_challenges = Table(
    "webauthn_challenges",
    Base.metadata,
    Column("handle_hash", String(64), primary_key=True),
    Column("purpose", String(16), nullable=False),
    Column(
        "user_id", String(USER_ID_CHARS), ForeignKey("users.id", ondelete="CASCADE"), nullable=True
    ),
    # Another single-use secret this ceremony is bound to (the digest of mfa-core's login
    # challenge for a second factor), or NULL.
    Column("binding", String(64), nullable=True),
    Column("challenge", Text(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("consumed_at", UTCDateTime(), nullable=True),
    Index("ix_webauthn_challenges_expires_at", "expires_at"),
)
