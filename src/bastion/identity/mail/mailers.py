"""The shipped mailers, chosen by the ``mailer`` setting.

- :class:`ConsoleMailer` (default, development): prints each mail to standard error, like the
  setup token. Never into the structured log: log pipelines keep and forward lines, and these
  mails carry one-time tokens.
- :class:`FileMailer`: one JSON file per mail in ``data_dir/mail`` (mode 0600), written
  atomically; end-to-end tests read tokens from it.
- :class:`SmtpMailer`: production, through an SMTP relay with STARTTLS or implicit TLS
  (aiosmtplib). The server certificate is verified (against the system's CAs, or ``ca_file``
  for a relay with a private CA), TLS 1.2 at least; a relay that cannot do TLS is refused.
- :class:`InMemoryMailer`: unit tests.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import sys
import time
import uuid
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from bastion.identity.mail.errors import MailDeliveryFailed
from bastion.identity.mail.interfaces import Mailer, MailMessage

if TYPE_CHECKING:
    from bastion.config.settings import Settings

__all__ = [
    "MAIL_DIR",
    "ConsoleMailer",
    "FileMailer",
    "InMemoryMailer",
    "SmtpMailer",
    "mailer_from_settings",
]

#: The file mailer's folder inside ``data_dir``.
MAIL_DIR = "mail"


class ConsoleMailer:
    """Prints mails to a terminal stream (standard error by default)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    async def send(self, message: MailMessage) -> None:
        stream = self._stream or sys.stderr
        stream.write(
            f"\n----- mail ({message.kind.value}) -----\n"
            f"To: {message.to}\nSubject: {message.subject}\n\n{message.text}"
            "----- end of mail -----\n"
        )
        stream.flush()

    async def aclose(self) -> None:
        return None


class FileMailer:
    """Writes each mail as ``<folder>/<ns>-<uuid>.json``: ``to, subject, text, kind, sent_at``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    async def send(self, message: MailMessage) -> None:
        try:
            await asyncio.to_thread(self._write, message)
        except OSError as exc:
            raise MailDeliveryFailed(type(exc).__name__) from exc

    def _write(self, message: MailMessage) -> None:
        # Only the owner may read the folder: the files hold one-time tokens.
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        name = f"{time.time_ns()}-{uuid.uuid4().hex}"
        document = {
            "to": message.to,
            "subject": message.subject,
            "text": message.text,
            "kind": message.kind.value,
            "sent_at": formatdate(usegmt=True),
        }
        temporary = self.folder / f".{name}.tmp"
        # Written under a temporary name, then renamed: a reader never sees half a mail.
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(document, handle, ensure_ascii=False)
        temporary.replace(self.folder / f"{name}.json")

    async def aclose(self) -> None:
        return None


class SmtpMailer:
    """Sends through an SMTP relay; TLS is mandatory (STARTTLS or implicit)."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        sender: str,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = True,
        implicit_tls: bool = False,
        timeout: float = 10.0,
        ca_file: Path | None = None,
    ) -> None:
        self._host = host
        self._port = port
        self._sender = sender
        self._username = username
        self._password = password
        self._starttls = starttls
        self._implicit_tls = implicit_tls
        self._timeout = timeout
        # Verified certificates and host names (the default context), never below TLS 1.2.
        self._tls = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        self._tls.minimum_version = ssl.TLSVersion.TLSv1_2

    def __repr__(self) -> str:
        return f"SmtpMailer(host={self._host!r}, port={self._port})"

    def _email(self, message: MailMessage) -> EmailMessage:
        email = EmailMessage()
        email["From"] = self._sender
        email["To"] = message.to
        email["Subject"] = message.subject
        email["Date"] = formatdate(usegmt=True)
        email["Message-ID"] = make_msgid(domain=self._sender.rpartition("@")[2].strip("> "))
        email.set_content(message.text)
        return email

    async def send(self, message: MailMessage) -> None:
        import aiosmtplib  # noqa: PLC0415 - only where mail goes over SMTP (~1 MiB)

        try:
            await aiosmtplib.send(
                self._email(message),
                hostname=self._host,
                port=self._port,
                username=self._username,
                password=self._password,
                use_tls=self._implicit_tls,
                start_tls=self._starttls if not self._implicit_tls else False,
                timeout=self._timeout,
                tls_context=self._tls,
            )
        except (aiosmtplib.SMTPException, OSError) as exc:
            # The class name only: a server's reply may quote the recipient or the message.
            raise MailDeliveryFailed(type(exc).__name__) from exc

    async def aclose(self) -> None:
        return None


class InMemoryMailer:
    """Keeps mails in a list (``sent``); ``fail`` makes the next sends raise."""

    def __init__(self) -> None:
        self.sent: list[MailMessage] = []
        self.fail = False

    async def send(self, message: MailMessage) -> None:
        if self.fail:
            raise MailDeliveryFailed("InMemoryMailer.fail")
        self.sent.append(message)

    async def aclose(self) -> None:
        return None


def mailer_from_settings(settings: Settings) -> Mailer:
    """The mailer the ``mailer`` setting names."""
    if settings.mailer == "file":
        return FileMailer(settings.data_dir / MAIL_DIR)
    if settings.mailer == "smtp":
        if settings.smtp_host is None:  # pragma: no cover - refused by the settings validator
            raise ValueError("mailer 'smtp' needs smtp_host")
        password = settings.smtp_password
        return SmtpMailer(
            host=settings.smtp_host,
            port=settings.smtp_port,
            sender=settings.mail_from,
            username=settings.smtp_username,
            password=password.get_secret_value() if password is not None else None,
            starttls=settings.smtp_starttls,
            implicit_tls=settings.smtp_tls,
            timeout=settings.smtp_timeout_seconds,
            ca_file=settings.smtp_ca_file,
        )
    return ConsoleMailer()
