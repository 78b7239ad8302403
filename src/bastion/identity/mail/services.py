"""The mail outbox: mails are written with the change that causes them, then delivered.

:meth:`Outbox.enqueue` inserts a row on the caller's connection, in the caller's transaction, so
a mail exists exactly when its change committed (no reset mail for a rolled-back reset, no lost
mail for a committed one). The dispatcher, a background task per process, delivers due mails
through the configured :class:`~bastion.identity.mail.interfaces.Mailer`:

- woken at once by :meth:`Outbox.wake` (call it after the commit), else every ``poll_interval``;
- each attempt first *claims* its row with an UPDATE that moves ``next_attempt_at`` forward, so
  several workers never send the same mail twice at once;
- a failed attempt is retried with exponential backoff, at most ``max_attempts`` times, then
  recorded as a ``mail:delivery:failed`` audit event;
- a sent mail's body (which may hold a one-time token) is blanked.

Bodies are sealed at rest (:class:`~bastion.crypto.EnvelopeCipher`, bound to the row id).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import timedelta

from sqlalchemy import insert, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from bastion.audit.events import AuditEvent, EventType, Outcome
from bastion.audit.interfaces import AuditRecorder
from bastion.clock import Clock
from bastion.crypto import EnvelopeCipher, bind
from bastion.crypto.errors import DecryptionFailed
from bastion.identity.mail.errors import MailDeliveryFailed
from bastion.identity.mail.interfaces import Mailer, MailKind, MailMessage
from bastion.identity.mail.models import mail_outbox
from bastion.logging import get_logger
from bastion.storage import Database, StorageError

__all__ = ["Outbox"]

logger = get_logger("bastion.identity.mail")

DEFAULT_POLL_INTERVAL_SECONDS = 5.0
DEFAULT_MAX_ATTEMPTS = 8
#: Mails claimed per round; the rest wait for the next round.
BATCH_SIZE = 50
#: A claimed mail is not retried by another worker before this: longer than an SMTP timeout.
CLAIM_SECONDS = 120
MAX_RETRY_DELAY_SECONDS = 3600
CLOSE_TIMEOUT_SECONDS = 10.0
_MAX_ERROR_CHARS = 255


def _binding(mail_id: str) -> bytes:
    return bind("mail_outbox", "body", mail_id)


class Outbox:
    """Queues mails in the database and delivers them in the background."""

    def __init__(
        self,
        database: Database,
        mailer: Mailer,
        cipher: EnvelopeCipher,
        *,
        clock: Clock,
        audit: AuditRecorder | None = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL_SECONDS,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> None:
        self.database = database
        self.mailer = mailer
        self._cipher = cipher
        self._clock = clock
        self._audit = audit
        self._poll_interval = poll_interval
        self._max_attempts = max_attempts
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    async def enqueue(self, connection: AsyncConnection, message: MailMessage) -> str:
        """Queue ``message`` in the caller's transaction; returns the mail's id. Call
        :meth:`wake` after the commit for a prompt delivery."""
        mail_id = str(uuid.uuid4())
        now = self._clock.now()
        sealed = self._cipher.encrypt(
            message.text.encode("utf-8", "surrogatepass"), associated_data=_binding(mail_id)
        )
        await connection.execute(
            insert(mail_outbox).values(
                id=mail_id,
                recipient=message.to,
                subject=message.subject,
                body=sealed,
                kind=message.kind.value,
                created_at=now,
                next_attempt_at=now,
                attempts=0,
            )
        )
        return mail_id

    def wake(self) -> None:
        """Deliver due mails now rather than at the next poll."""
        self._wakeup.set()

    async def dispatch_due(self) -> int:
        """Try every due mail once; returns how many were sent."""
        now = self._clock.now()
        c = mail_outbox.c
        query = (
            select(c.id)
            .where(c.sent_at.is_(None), c.next_attempt_at <= now, c.attempts < self._max_attempts)
            .order_by(c.next_attempt_at)
            .limit(BATCH_SIZE)
        )
        async with self.database.engine.connect() as connection:
            ids = [row.id for row in await connection.execute(query)]
        sent = 0
        for mail_id in ids:
            sent += await self._attempt(mail_id)
        return sent

    async def _attempt(self, mail_id: str) -> int:
        now = self._clock.now()
        c = mail_outbox.c
        async with self.database.engine.begin() as connection:
            row = (
                await connection.execute(
                    update(mail_outbox)
                    .where(c.id == mail_id, c.sent_at.is_(None), c.next_attempt_at <= now)
                    .values(
                        attempts=c.attempts + 1,
                        next_attempt_at=now + timedelta(seconds=CLAIM_SECONDS),
                    )
                    .returning(c.recipient, c.subject, c.body, c.kind, c.attempts)
                )
            ).first()
        if row is None:
            return 0  # another worker claimed it
        try:
            text = self._cipher.decrypt(row.body, associated_data=_binding(mail_id))
            message = MailMessage(
                row.recipient,
                row.subject,
                text.decode("utf-8", "surrogatepass"),
                MailKind(row.kind),
            )
            await self.mailer.send(message)
        except (MailDeliveryFailed, DecryptionFailed, ValueError) as exc:
            await self._failed(mail_id, row.attempts, row.kind, exc)
            return 0
        async with self.database.engine.begin() as connection:
            await connection.execute(
                update(mail_outbox)
                .where(c.id == mail_id)
                .values(sent_at=self._clock.now(), body="", last_error=None)
            )
        return 1

    async def _failed(self, mail_id: str, attempts: int, kind: str, exc: Exception) -> None:
        delay = min(30 * 2 ** (attempts - 1), MAX_RETRY_DELAY_SECONDS)
        error = (getattr(exc, "code", None) or type(exc).__name__)[:_MAX_ERROR_CHARS]
        c = mail_outbox.c
        async with self.database.engine.begin() as connection:
            await connection.execute(
                update(mail_outbox)
                .where(c.id == mail_id)
                .values(
                    last_error=error,
                    next_attempt_at=self._clock.now() + timedelta(seconds=delay),
                )
            )
        logger.warning("mail delivery failed", mail_id=mail_id, attempts=attempts, error=error)
        if attempts >= self._max_attempts and self._audit is not None:
            self._audit.record(
                AuditEvent(
                    type=EventType.MAIL_DELIVERY_FAILED,
                    outcome=Outcome.FAILURE,
                    time=self._clock.now(),
                    subject=f"mail:{mail_id}",
                    reason=error,
                    details={"kind": kind, "attempts": attempts},
                )
            )

    async def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._run(), name="bastion-mail-outbox")

    async def aclose(self) -> None:
        """Deliver what is due one last time (bounded), then stop."""
        task, self._task = self._task, None
        if task is not None:
            self._stopping = True
            self.wake()
            try:
                await asyncio.wait_for(task, CLOSE_TIMEOUT_SECONDS)
            except TimeoutError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.mailer.aclose()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self._poll_interval)
            self._wakeup.clear()
            try:
                await self.dispatch_due()
            except (SQLAlchemyError, StorageError, OSError) as exc:
                # The database is down: try again at the next round; never end the task.
                logger.warning("mail outbox unavailable", error=type(exc).__name__)
            if self._stopping:
                return
