"""Alert mails, through the identity mail outbox (sealed at rest, retried, audited on failure).

:class:`EmailAlerts` mails operators (``monitoring.alert_emails``) about alerts of
``email_min_severity`` and above; :class:`SignInNotifier` mails a user about a login from a new
device or network. Both write to the outbox in one transaction and wake its dispatcher.
"""

from __future__ import annotations

from collections.abc import Sequence

from bastion.identity.accounts.users import get_user
from bastion.identity.mail.interfaces import MailKind, MailMessage
from bastion.identity.mail.services import Outbox
from bastion.monitoring.alerts import Alert
from bastion.storage import Database

_FOOTER = "\n\nThis mail was sent by Bastion's security monitoring.\n"


def alert_mail(to: str, alert: Alert) -> MailMessage:
    evidence = ", ".join(str(seq) for seq in alert.evidence[:20]) or "none"
    text = (
        f"Bastion raised a {alert.severity.value} alert: {alert.detector.value}.\n\n"
        f"{alert.summary}\n\n"
        f"Alert id: {alert.id}\nTime: {alert.time.isoformat()}\n"
        f"Client IP: {alert.client_ip or '-'}\nSubject: {alert.subject or '-'}\n"
        f"Evidence (audit sequence numbers): {evidence}\n" + _FOOTER
    )
    subject = f"[Bastion] {alert.severity.value} security alert: {alert.detector.value}"
    return MailMessage(to, subject, text, MailKind.SECURITY_ALERT)


def new_sign_in_mail(to: str, alert: Alert) -> MailMessage:
    text = (
        "Your account was just signed in to from a device or network it had not used before.\n\n"
        f"Time: {alert.time.isoformat()}\nIP address: {alert.client_ip or 'unknown'}\n"
        f"Browser: {alert.details.get('user_agent') or 'unknown'}\n\n"
        "If this was you, nothing more to do. If it was not, change your password now and "
        "sign out your other sessions." + _FOOTER
    )
    return MailMessage(to, "New sign-in to your account", text, MailKind.NEW_SIGN_IN)


class EmailAlerts:
    def __init__(self, database: Database, outbox: Outbox, recipients: Sequence[str]) -> None:
        self._database = database
        self._outbox = outbox
        self._recipients = tuple(recipients)

    async def send(self, alert: Alert) -> None:
        if not self._recipients:
            return
        async with self._database.engine.begin() as connection:
            for to in self._recipients:
                await self._outbox.enqueue(connection, alert_mail(to, alert))
        self._outbox.wake()


class SignInNotifier:
    """Mails the user named by a new-device alert's ``details.user_id``."""

    def __init__(self, database: Database, outbox: Outbox) -> None:
        self._database = database
        self._outbox = outbox

    async def send(self, alert: Alert) -> None:
        user_id = alert.details.get("user_id")
        if not isinstance(user_id, str):
            return
        async with self._database.engine.begin() as connection:
            user = await get_user(connection, user_id)
            if user is None or user.disabled:
                return
            await self._outbox.enqueue(connection, new_sign_in_mail(user.email, alert))
        self._outbox.wake()
