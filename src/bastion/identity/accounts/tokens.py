"""One-time account tokens: email verification, email change, password reset.

A token is :func:`bastion.crypto.new_token` (256 random bits with a kind prefix), mailed to the
user and stored only as its SHA-256 digest. :func:`consume` uses a token up atomically: the
UPDATE that marks it consumed is also the check that it is unconsumed and unexpired, so of two
concurrent requests exactly one succeeds (no check-then-act race).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Row, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bastion.crypto import TokenKind, hash_token, is_well_formed, new_token
from bastion.identity.accounts.models import account_tokens

__all__ = [
    "RejectReason",
    "TokenPurpose",
    "consume",
    "consume_all",
    "issue",
    "peek",
    "why_rejected",
]


class TokenPurpose(enum.StrEnum):
    VERIFY_EMAIL = "verify_email"
    CHANGE_EMAIL = "change_email"
    PASSWORD_RESET = "password_reset"  # noqa: S105 - a purpose, not a secret

    @property
    def kind(self) -> TokenKind:
        if self is TokenPurpose.PASSWORD_RESET:
            return TokenKind.PASSWORD_RESET
        return TokenKind.EMAIL_VERIFICATION


class RejectReason(enum.StrEnum):
    """Why a token was refused: recorded in the audit trail, never told to the caller."""

    MALFORMED = "malformed"
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    ALREADY_USED = "already_used"


async def issue(
    connection: AsyncConnection,
    *,
    user_id: str,
    purpose: TokenPurpose,
    ttl: timedelta,
    now: datetime,
    new_email: str | None = None,
    password_hash: str | None = None,
) -> str:
    """Store a new token's digest and return the token (it exists nowhere else)."""
    token = new_token(purpose.kind)
    await connection.execute(
        insert(account_tokens).values(
            token_hash=hash_token(token),
            user_id=user_id,
            purpose=purpose.value,
            created_at=now,
            expires_at=now + ttl,
            new_email=new_email,
            password_hash=password_hash,
        )
    )
    return token


def _usable(token: str, purposes: Iterable[TokenPurpose], now: datetime) -> list[Any]:
    c = account_tokens.c
    return [
        c.token_hash == hash_token(token),
        c.purpose.in_([p.value for p in purposes]),
        c.consumed_at.is_(None),
        c.expires_at > now,
    ]


def _well_formed(token: str, purposes: Iterable[TokenPurpose]) -> bool:
    return any(is_well_formed(token, purpose.kind) for purpose in purposes)


async def consume(
    connection: AsyncConnection, token: str, purposes: Iterable[TokenPurpose], now: datetime
) -> Row[Any] | None:
    """Use ``token`` up; returns its row (``user_id, purpose, new_email, password_hash``), or
    None when it is malformed, unknown, expired, used or of another purpose."""
    purposes = tuple(purposes)
    if not _well_formed(token, purposes):
        return None
    c = account_tokens.c
    result = await connection.execute(
        update(account_tokens)
        .where(*_usable(token, purposes, now))
        .values(consumed_at=now)
        .returning(c.id, c.user_id, c.purpose, c.new_email, c.password_hash)
    )
    return result.first()


async def peek(
    connection: AsyncConnection, token: str, purposes: Iterable[TokenPurpose], now: datetime
) -> Row[Any] | None:
    """The row of a usable ``token`` without consuming it, or None."""
    purposes = tuple(purposes)
    if not _well_formed(token, purposes):
        return None
    c = account_tokens.c
    query = select(c.id, c.user_id, c.purpose).where(*_usable(token, purposes, now))
    return cast("Row[Any] | None", (await connection.execute(query)).first())


async def why_rejected(
    connection: AsyncConnection, token: str, purposes: Iterable[TokenPurpose]
) -> tuple[RejectReason, str | None]:
    """The reason a token was refused and the user it belongs to, for the audit trail."""
    purposes = tuple(purposes)
    if not _well_formed(token, purposes):
        return RejectReason.MALFORMED, None
    c = account_tokens.c
    query = select(c.user_id, c.consumed_at).where(
        c.token_hash == hash_token(token), c.purpose.in_([p.value for p in purposes])
    )
    row = (await connection.execute(query)).first()
    if row is None:
        return RejectReason.UNKNOWN, None
    if row.consumed_at is not None:
        return RejectReason.ALREADY_USED, row.user_id
    return RejectReason.EXPIRED, row.user_id


async def consume_all(
    connection: AsyncConnection,
    user_id: str,
    purposes: Iterable[TokenPurpose],
    now: datetime,
) -> None:
    """Void every outstanding token of ``purposes`` for the user (after a password reset, a
    confirmed address: older links must not reopen what was just settled)."""
    c = account_tokens.c
    await connection.execute(
        update(account_tokens)
        .where(
            c.user_id == user_id,
            c.purpose.in_([p.value for p in purposes]),
            c.consumed_at.is_(None),
        )
        .values(consumed_at=now)
    )
