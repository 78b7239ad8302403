"""Errors of the mail domain (server-side only: a client never sees them).

BastionError
└── MailError                    500 mail_error
    └── MailDeliveryFailed       500 mail_delivery_failed   the mailer could not hand the mail
                                                            over; the outbox retries it
"""

from __future__ import annotations

from bastion.errors import BastionError

__all__ = ["MailDeliveryFailed", "MailError"]


class MailError(BastionError):
    code = "mail_error"
    status = 500
    title = "Mail error"


class MailDeliveryFailed(MailError):
    code = "mail_delivery_failed"
    title = "The mail could not be delivered"
