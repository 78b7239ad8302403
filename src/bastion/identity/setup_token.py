"""One-time setup tokens: the credential that creates the first administrator.

``bastion serve`` prints a token on first start (the terminal is the only place it ever appears);
the setup call consumes it. A token is random (256 bits), single use, expires after a TTL, and a
new one supersedes the previous one. The database stores only its SHA-256 digest.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bastion.audit.context import event_from_scope
from bastion.audit.events import EventType, Outcome
from bastion.audit.interfaces import AuditRecorder
from bastion.clock import Clock
from bastion.identity.accounts.models import users
from bastion.identity.errors import InvalidSetupToken
from bastion.identity.models import setup_tokens
from bastion.storage import Database

TOKEN_PREFIX = "bst_setup_"  # noqa: S105 - a public prefix that makes leaked tokens greppable
#: 32 random bytes = 256 bits from the OS CSPRNG; token_urlsafe encodes them as 43 characters.
TOKEN_BYTES = 32
#: Longer input is refused before hashing (a real token is 53 characters).
MAX_TOKEN_CHARS = 128


class RejectReason(enum.StrEnum):
    """Why a setup token was refused; recorded in the audit trail, never told to the caller."""

    MALFORMED = "malformed"
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    ALREADY_USED = "already_used"


def hash_token(token: str) -> str:
    """The stored form of a token: its SHA-256 hex digest.

    A fast hash is right here, unlike for passwords: slow, salted hashes exist to make guessing
    low-entropy secrets offline expensive, and a 256-bit random token cannot be guessed at any
    speed. A stolen copy of the table therefore yields no usable token.
    """
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class SetupTokenService:
    """Issues and consumes setup tokens. ``consume`` raises InvalidSetupToken for any bad token."""

    def __init__(
        self, database: Database, *, clock: Clock, ttl_seconds: int, audit: AuditRecorder
    ) -> None:
        self._database = database
        self._clock = clock
        self._ttl = timedelta(seconds=ttl_seconds)
        self._audit = audit

    async def issue(self) -> str:
        """A fresh token; any earlier unconsumed token stops working. Returns the token itself,
        which exists nowhere else: the caller shows it to the operator once."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
        now = self._clock.now()
        expires_at = now + self._ttl
        table = setup_tokens.c
        async with self._database.engine.begin() as connection:
            # One valid token at a time: a token printed at an earlier start (perhaps into a
            # terminal log someone else can read) is superseded by expiring it now.
            await connection.execute(
                update(setup_tokens)
                .where(table.consumed_at.is_(None), table.expires_at > now)
                .values(expires_at=now)
            )
            result = await connection.execute(
                insert(setup_tokens)
                .values(token_hash=hash_token(token), created_at=now, expires_at=expires_at)
                .returning(table.id)
            )
            token_id = int(result.scalar_one())
        self._record(
            EventType.SYSTEM_SETUP_TOKEN_ISSUED,
            Outcome.SUCCESS,
            now,
            token_id,
            details={"expires_at": expires_at.isoformat()},
        )
        return token

    async def consume(
        self,
        token: str,
        *,
        scope: Mapping[str, Any] | None = None,
        connection: AsyncConnection | None = None,
    ) -> None:
        """Use ``token`` up. Raises InvalidSetupToken when it is unknown, expired, superseded,
        already used or malformed (one opaque error; the reason goes to the audit trail).

        ``scope``, the ASGI scope of the setup request, puts the client's address, user agent
        and request id in the audit event. With ``connection``, the token is consumed in the
        caller's transaction (the first administrator is created in the same one, so a failure
        there leaves the token unused).
        """
        now = self._clock.now()
        if connection is None:
            async with self._database.engine.begin() as own:
                reason, token_id = await self._consume(token, now, own)
        else:
            reason, token_id = await self._consume(token, now, connection)
        if reason is None:
            self._record(
                EventType.SYSTEM_SETUP_TOKEN_CONSUMED, Outcome.SUCCESS, now, token_id, scope=scope
            )
            return
        self._record(
            EventType.SYSTEM_SETUP_TOKEN_REJECTED,
            Outcome.FAILURE,
            now,
            token_id,
            scope=scope,
            reason=reason,
        )
        raise InvalidSetupToken

    async def _consume(
        self, token: str, now: datetime, connection: AsyncConnection
    ) -> tuple[RejectReason | None, int | None]:
        if len(token) > MAX_TOKEN_CHARS or not token.startswith(TOKEN_PREFIX):
            return RejectReason.MALFORMED, None
        # The token is found by the index lookup of its hash, which is not constant time. That
        # is safe: timing could at most reveal bytes of a stored *hash*, and a hash is useless
        # without a preimage of SHA-256. The token itself is never compared.
        token_hash = hash_token(token)
        table = setup_tokens.c
        # Single use, atomically: "not consumed, not expired" is checked by the same UPDATE
        # that consumes, so of two concurrent requests exactly one matches the row (no
        # check-then-act race).
        consumed = await connection.execute(
            update(setup_tokens)
            .where(
                table.token_hash == token_hash,
                table.consumed_at.is_(None),
                table.expires_at > now,
            )
            .values(consumed_at=now)
            .returning(table.id)
        )
        rows = consumed.all()
        if len(rows) == 1:
            return None, int(rows[0].id)
        found = await connection.execute(
            select(table.id, table.consumed_at).where(table.token_hash == token_hash)
        )
        row = found.first()
        if row is None:
            return RejectReason.UNKNOWN, None
        if row.consumed_at is not None:
            return RejectReason.ALREADY_USED, int(row.id)
        # Expired, or superseded by a newer token (issue() expires the old one).
        return RejectReason.EXPIRED, int(row.id)

    async def is_setup_complete(self) -> bool:
        """Whether an administrator exists, or a setup token was ever consumed."""
        consumed = select(setup_tokens.c.id).where(setup_tokens.c.consumed_at.is_not(None))
        admin = select(users.c.id).where(users.c.is_admin.is_(True))
        async with self._database.engine.connect() as connection:
            if (await connection.execute(admin.limit(1))).first() is not None:
                return True
            return (await connection.execute(consumed.limit(1))).first() is not None

    async def ensure_token_for_first_start(self) -> str | None:
        """A new token while setup is not complete (for ``serve`` to print); otherwise None."""
        if await self.is_setup_complete():
            return None
        return await self.issue()

    def _record(
        self,
        type_: EventType,
        outcome: Outcome,
        now: datetime,
        token_id: int | None,
        *,
        scope: Mapping[str, Any] | None = None,
        reason: str | None = None,
        details: dict[str, str] | None = None,
    ) -> None:
        # Never the token, nor its hash: the id is enough to follow one token through the trail.
        subject = f"setup_token:{token_id}" if token_id is not None else None
        event = event_from_scope(
            scope or {},
            type_,
            outcome,
            subject=subject,
            reason=reason,
            details=details,
            clock=self._clock,
        )
        self._audit.record(dataclasses.replace(event, time=now))
