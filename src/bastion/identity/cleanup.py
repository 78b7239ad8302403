"""Deleting what has ended: sessions, their refresh tokens, account tokens and outbox mails.

Rows that no longer serve anything are kept for ``retention`` after they end (support
look-ups: "which sessions did I have last week?"), then deleted; the audit log, not these
tables, is the lasting record. Keeping them forever would grow the tables without bound and
keep personal data (IP addresses, user agents, mail recipients) longer than needed (GDPR
Art. 5(1)(e), storage limitation).

What ends when:

* a session: at its revocation, its absolute expiry, or ``idle`` after it was last seen,
  whichever comes first. Its refresh tokens go with it, never before: a rotated token is what
  reuse detection recognises, for as long as its session lives.
* an account token (email verification, password reset, email change): when used, or expired.
* a mail: when sent (its body is blanked then), or, unsent, once ``retention`` has passed
  since it was queued (its retries have long been exhausted and any token in it has expired).

A revoked session is deleted no earlier than the revocation window (one access-token
lifetime plus the leeway and the revocation bound): :class:`RevocationCache` must still see the
revocation while any access token of the session could be unexpired.

Deletions run in batches of ``BATCH_SIZE`` rows, each its own short transaction, so a first
run over a large backlog never holds a long write lock (SQLite) nor one huge transaction.
Every worker may run it: deleting is idempotent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, Table, and_, delete, or_, select

from bastion.clock import Clock
from bastion.identity.accounts.models import account_tokens
from bastion.identity.mail.models import mail_outbox
from bastion.identity.mfa.models import mfa_challenges
from bastion.identity.sessions.models import refresh_tokens, sessions
from bastion.logging import get_logger
from bastion.storage import Database

__all__ = ["BATCH_SIZE", "Cleanup", "CleanupReport"]

logger = get_logger("bastion.identity.cleanup")

#: Rows deleted per transaction.
BATCH_SIZE = 500


@dataclass(frozen=True, slots=True)
class CleanupReport:
    """How many rows one run deleted, per table."""

    sessions: int = 0
    refresh_tokens: int = 0
    account_tokens: int = 0
    mails: int = 0
    mfa_challenges: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "sessions": self.sessions,
            "refresh_tokens": self.refresh_tokens,
            "account_tokens": self.account_tokens,
            "mails": self.mails,
            "mfa_challenges": self.mfa_challenges,
        }


class Cleanup:
    """Deletes rows that ended more than ``retention`` ago (see the module docstring)."""

    def __init__(
        self,
        database: Database,
        clock: Clock,
        *,
        retention: timedelta,
        idle: timedelta,
        revocation_window: timedelta,
    ) -> None:
        self.database = database
        self.clock = clock
        self.retention = retention
        self.idle = idle
        self.revocation_window = revocation_window

    async def run(self) -> CleanupReport:
        """Delete everything due now; returns the counts. Raises SQLAlchemy errors."""
        now = self.clock.now()
        cutoff = now - self.retention
        revoked_cutoff = now - max(self.retention, self.revocation_window)
        ended = or_(
            sessions.c.revoked_at < revoked_cutoff,
            and_(sessions.c.revoked_at.is_(None), sessions.c.absolute_expires_at < cutoff),
            and_(sessions.c.revoked_at.is_(None), sessions.c.last_seen_at < cutoff - self.idle),
        )
        session_count, token_count = await self._sessions(ended)
        used_or_expired = or_(
            account_tokens.c.consumed_at < cutoff, account_tokens.c.expires_at < cutoff
        )
        done = or_(
            mail_outbox.c.sent_at < cutoff,
            and_(mail_outbox.c.sent_at.is_(None), mail_outbox.c.created_at < cutoff),
        )
        report = CleanupReport(
            sessions=session_count,
            refresh_tokens=token_count,
            account_tokens=await self._delete(account_tokens, used_or_expired),
            mails=await self._delete(mail_outbox, done),
            # Login challenges live minutes; a used or expired one is only evidence for the
            # retention period (the audit trail keeps the events).
            mfa_challenges=await self._delete(
                mfa_challenges,
                or_(mfa_challenges.c.used_at < cutoff, mfa_challenges.c.expires_at < cutoff),
            ),
        )
        logger.info("identity cleanup", **report.as_dict())
        return report

    async def _sessions(self, ended: ColumnElement[bool]) -> tuple[int, int]:
        deleted_sessions = deleted_tokens = 0
        while True:
            async with self.database.engine.begin() as connection:
                query = select(sessions.c.id).where(ended).limit(BATCH_SIZE)
                ids = list((await connection.execute(query)).scalars())
                if not ids:
                    break
                # Explicitly, not by ON DELETE CASCADE alone: the schema must not be the only
                # thing standing between a deleted session and its refresh tokens.
                tokens = await connection.execute(
                    delete(refresh_tokens).where(refresh_tokens.c.session_id.in_(ids))
                )
                gone = await connection.execute(delete(sessions).where(sessions.c.id.in_(ids)))
            deleted_tokens += _count(tokens)
            deleted_sessions += _count(gone)
            if len(ids) < BATCH_SIZE:
                break
        return deleted_sessions, deleted_tokens

    async def _delete(self, table: Table, condition: ColumnElement[bool]) -> int:
        deleted = 0
        key = table.c.id
        while True:
            async with self.database.engine.begin() as connection:
                ids = list(
                    (
                        await connection.execute(select(key).where(condition).limit(BATCH_SIZE))
                    ).scalars()
                )
                if not ids:
                    break
                deleted += _count(await connection.execute(delete(table).where(key.in_(ids))))
            if len(ids) < BATCH_SIZE:
                break
        return deleted


def _count(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)
