"""The ``mail_outbox`` table: mails waiting to be sent, and the record of those sent.

A mail is written in the same transaction as the change that causes it, then delivered by the
dispatcher (:mod:`bastion.identity.mail.services`), retried with backoff when the mailer fails.
Bodies hold one-time tokens, so ``body`` is sealed (encrypted, bound to the row id) and blanked
once the mail is sent: the table never holds a usable token in clear.
"""

from __future__ import annotations

from sqlalchemy import Column, Index, Integer, String, Table, Text

from bastion.identity.accounts.models import EMAIL_CHARS
from bastion.storage.base import Base
from bastion.storage.columns import UTCDateTime

mail_outbox = Table(
    "mail_outbox",
    Base.metadata,
    Column("id", String(36), primary_key=True),
    Column("recipient", String(EMAIL_CHARS), nullable=False),
    Column("subject", String(255), nullable=False),
    Column("body", Text, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("next_attempt_at", UTCDateTime(), nullable=False),
    Column("sent_at", UTCDateTime(), nullable=True),
    Column("attempts", Integer, nullable=False),
    Column("last_error", String(255), nullable=True),
    Index("ix_mail_outbox_pending", "sent_at", "next_attempt_at"),
)
