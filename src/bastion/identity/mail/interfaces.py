"""The mailer seam: where a rendered mail goes (console, files, SMTP, memory)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["MailKind", "MailMessage", "Mailer"]


class MailKind(enum.StrEnum):
    """What a mail is for. Stable: tests and operators filter on it."""

    VERIFY_EMAIL = "verify_email"
    PASSWORD_RESET = "password_reset"  # noqa: S105 - a mail kind, not a secret
    PASSWORD_CHANGED = "password_changed"  # noqa: S105 - a mail kind, not a secret
    REGISTRATION_ATTEMPT = "registration_attempt"
    EMAIL_CHANGE_REQUESTED = "email_change_requested"
    EMAIL_CHANGED = "email_changed"
    MFA_CHANGED = "mfa_changed"
    MFA_RECOVERY_CODE_USED = "mfa_recovery_code_used"
    MFA_RESET = "mfa_reset"
    #: bastion.monitoring: security alerts to operators, new sign-in notices to users.
    SECURITY_ALERT = "security_alert"
    NEW_SIGN_IN = "new_sign_in"


@dataclass(frozen=True, slots=True)
class MailMessage:
    """One plain-text mail to one recipient. ``text`` may hold a one-time token: never log it."""

    to: str
    subject: str
    text: str = field(repr=False)
    kind: MailKind


class Mailer(Protocol):
    """Delivers mails.

    ``send`` returns once the mail is handed over (written, printed, accepted by the SMTP
    server). Raises :class:`~bastion.identity.mail.errors.MailDeliveryFailed` when it cannot be;
    the outbox retries later. Never logs the body.
    """

    async def send(self, message: MailMessage) -> None: ...

    async def aclose(self) -> None: ...
