"""Mail through a real SMTP server: aiosmtpd, started by the test on a free port, receives what
the outbox delivers through the production mailer (aiosmtplib).

Covered: STARTTLS with AUTH, end to end (registration -> verification mail -> the token in it
confirms the address); implicit TLS; the certificate is verified (an untrusted one is refused,
so is a relay that offers no STARTTLS: no fallback to plain text); a refused mail is retried
with backoff by the outbox and delivered once the server accepts again; a mail refused every
time ends with a ``mail:delivery:failed`` audit event. The server's certificate is made here
with ``cryptography``: a private CA that the mailer trusts through ``smtp_ca_file``.
"""

from __future__ import annotations

import ipaddress
import re
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import SecretStr
from sqlalchemy import select
from tests.common.server import free_port
from tests.functional.identity_helpers import (
    eventually,
    fresh_client,
    identity_settings,
    register,
    running_app,
    unique_email,
)
from tests.unit.identity.conftest import ListRecorder

from bastion.audit.events import EventType
from bastion.clock import FrozenClock
from bastion.crypto import EnvelopeCipher, Keyring
from bastion.identity.mail.errors import MailDeliveryFailed
from bastion.identity.mail.interfaces import MailKind, MailMessage
from bastion.identity.mail.mailers import SmtpMailer
from bastion.identity.mail.models import mail_outbox
from bastion.identity.mail.services import DEFAULT_MAX_ATTEMPTS, MAX_RETRY_DELAY_SECONDS, Outbox
from bastion.storage import Database

HOST = "127.0.0.1"
USERNAME = "bastion"
SMTP_PASSWORD = "relay-secret-0123456789"
SENDER = "Bastion <no-reply@example.com>"
_TOKEN = re.compile(r"^Token: (\S+)\s*$", re.MULTILINE)


# -- certificates ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Pki:
    ca_file: Path
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A private CA and a server certificate for 127.0.0.1 signed by it."""
    folder = tmp_path_factory.mktemp("pki")
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("Bastion test CA"))
        .issuer_name(_name("Bastion test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(HOST))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST))]),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    pki = Pki(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    pki.ca_file.write_bytes(ca.public_bytes(pem))
    pki.cert_file.write_bytes(cert.public_bytes(pem))
    pki.key_file.write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return pki


# -- the SMTP server -------------------------------------------------------------------------
@dataclass
class Inbox:
    """The aiosmtpd handler: keeps accepted mails; refuses the next ``refuse`` ones."""

    refuse: int = 0
    refusal: str = "451 4.3.0 Temporary failure, try again later"
    received: list[Message] = field(default_factory=list)
    tls: list[bool] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        # STARTTLS sets session.ssl; implicit TLS shows in the transport.
        tls = session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None
        with self.lock:
            if self.refuse:
                self.refuse -= 1
                return self.refusal
            self.received.append(message_from_bytes(envelope.original_content))
            self.tls.append(tls)
        return "250 2.0.0 OK"

    def authenticate(self, *args: Any) -> AuthResult:
        """aiosmtpd's ``authenticator(server, session, envelope, mechanism, auth_data)``."""
        mechanism, data = args[3], args[4]
        ok = (
            isinstance(data, LoginPassword)
            and data.login == USERNAME.encode()
            and data.password == SMTP_PASSWORD.encode()
        )
        if ok:
            self.logins.append(mechanism)
        return AuthResult(success=ok)


@dataclass
class Relay:
    inbox: Inbox
    port: int


def _serve(inbox: Inbox, **options: Any) -> Iterator[Relay]:
    port = free_port()
    controller = Controller(inbox, hostname=HOST, port=port, **options)
    controller.start()
    try:
        yield Relay(inbox, port)
    finally:
        controller.stop()


@pytest.fixture
def starttls_relay(pki: Pki) -> Iterator[Relay]:
    """STARTTLS required, and AUTH (only over TLS)."""
    inbox = Inbox()
    yield from _serve(
        inbox,
        tls_context=pki.server_context(),
        require_starttls=True,
        auth_required=True,
        authenticator=inbox.authenticate,
    )


@pytest.fixture
def implicit_tls_relay(pki: Pki) -> Iterator[Relay]:
    yield from _serve(Inbox(), ssl_context=pki.server_context())


@pytest.fixture
def plain_relay() -> Iterator[Relay]:
    """A relay that offers no STARTTLS at all."""
    yield from _serve(Inbox())


def _mailer(relay: Relay, pki: Pki | None, **options: Any) -> SmtpMailer:
    values: dict[str, Any] = {
        "host": HOST,
        "port": relay.port,
        "sender": SENDER,
        "ca_file": pki.ca_file if pki is not None else None,
        "timeout": 10.0,
    }
    values.update(options)
    return SmtpMailer(**values)


def _message(to: str = "ann@example.org") -> MailMessage:
    return MailMessage(to, "Hello", "Token: abc\n", MailKind.VERIFY_EMAIL)


# -- the tests -------------------------------------------------------------------------------
async def test_registration_mail_arrives_over_starttls_and_its_token_works(
    tmp_path: Path, pki: Pki, starttls_relay: Relay
) -> None:
    settings = identity_settings(
        tmp_path,
        mailer="smtp",
        smtp_host=HOST,
        smtp_port=starttls_relay.port,
        smtp_username=USERNAME,
        smtp_password=SMTP_PASSWORD,
        smtp_starttls=True,
        smtp_ca_file=pki.ca_file,
        mail_from=SENDER,
    )
    email = unique_email()
    async with running_app(settings) as app, fresh_client(app) as client:
        assert (await register(client, email)).status_code == 202
        inbox = starttls_relay.inbox

        async def delivered() -> bool:
            return bool(inbox.received)

        # The outbox's own dispatcher delivers it, in the background.
        await eventually(delivered, within=10)
        assert len(inbox.received) == 1, inbox.received
        mail = inbox.received[0]
        assert mail["To"] == email
        assert mail["From"] == SENDER
        assert inbox.tls == [True]
        assert inbox.logins  # authenticated, over TLS
        body = mail.get_payload(decode=True)
        assert isinstance(body, bytes)
        match = _TOKEN.search(body.decode())
        assert match, body
        confirmed = await client.post("/v1/accounts/verify-email", json={"token": match[1]})
        assert confirmed.status_code == 200, confirmed.text


async def test_implicit_tls(pki: Pki, implicit_tls_relay: Relay) -> None:
    mailer = _mailer(implicit_tls_relay, pki, starttls=False, implicit_tls=True)
    await mailer.send(_message())
    assert [m["To"] for m in implicit_tls_relay.inbox.received] == ["ann@example.org"]
    assert implicit_tls_relay.inbox.tls == [True]


async def test_an_untrusted_certificate_is_refused(starttls_relay: Relay) -> None:
    # No ca_file: the system's CAs do not know the test CA.
    mailer = _mailer(starttls_relay, None, username=USERNAME, password=SMTP_PASSWORD)
    with pytest.raises(MailDeliveryFailed):
        await mailer.send(_message())
    assert starttls_relay.inbox.received == []
    assert starttls_relay.inbox.logins == []  # the password never left


async def test_a_relay_without_starttls_gets_nothing_in_clear(pki: Pki, plain_relay: Relay) -> None:
    mailer = _mailer(plain_relay, pki, username=USERNAME, password=SMTP_PASSWORD)
    with pytest.raises(MailDeliveryFailed):
        await mailer.send(_message())
    assert plain_relay.inbox.received == []


async def test_a_closed_port_is_a_delivery_failure(pki: Pki) -> None:
    mailer = _mailer(Relay(Inbox(), free_port()), pki, timeout=5.0)
    with pytest.raises(MailDeliveryFailed):
        await mailer.send(_message())


# -- the outbox against a refusing server ----------------------------------------------------
@dataclass
class OutboxStack:
    outbox: Outbox
    database: Database
    clock: FrozenClock
    recorder: ListRecorder
    inbox: Inbox

    async def row(self, mail_id: str) -> Any:
        async with self.database.engine.connect() as connection:
            query = select(mail_outbox).where(mail_outbox.c.id == mail_id)
            return (await connection.execute(query)).one()

    async def enqueue(self) -> str:
        async with self.database.engine.begin() as connection:
            return await self.outbox.enqueue(connection, _message())


@pytest.fixture
async def outbox_stack(database: Database, pki: Pki, starttls_relay: Relay) -> OutboxStack:
    clock = FrozenClock(datetime.now(UTC))
    recorder = ListRecorder()
    cipher = EnvelopeCipher.from_keyring(Keyring(SecretStr("s" * 48)))
    mailer = _mailer(starttls_relay, pki, username=USERNAME, password=SMTP_PASSWORD)
    outbox = Outbox(database, mailer, cipher, clock=clock, audit=recorder)
    return OutboxStack(outbox, database, clock, recorder, starttls_relay.inbox)


async def test_a_refused_mail_is_retried_with_backoff_then_delivered(
    outbox_stack: OutboxStack,
) -> None:
    stack = outbox_stack
    stack.inbox.refuse = 2
    mail_id = await stack.enqueue()

    assert await stack.outbox.dispatch_due() == 0
    first = await stack.row(mail_id)
    assert (first.attempts, first.sent_at) == (1, None)
    assert first.last_error == "mail_delivery_failed"
    assert first.body  # still sealed, still to send
    assert await stack.outbox.dispatch_due() == 0  # not due again yet: backoff

    stack.clock.advance(timedelta(seconds=31))
    assert await stack.outbox.dispatch_due() == 0
    second = await stack.row(mail_id)
    assert second.attempts == 2
    # The delay doubles: 30 s after the first failure, 60 s after the second.
    assert second.next_attempt_at - stack.clock.now() == timedelta(seconds=60)

    stack.clock.advance(timedelta(seconds=61))
    assert await stack.outbox.dispatch_due() == 1
    sent = await stack.row(mail_id)
    assert sent.sent_at is not None
    assert sent.body == ""  # the token in it is gone
    assert [m["To"] for m in stack.inbox.received] == ["ann@example.org"]
    assert stack.recorder.of(EventType.MAIL_DELIVERY_FAILED) == []


async def test_a_mail_refused_every_time_ends_in_an_audit_event(
    outbox_stack: OutboxStack,
) -> None:
    stack = outbox_stack
    stack.inbox.refuse = 10_000
    stack.inbox.refusal = "550 5.7.1 Relaying denied"
    mail_id = await stack.enqueue()
    for _ in range(DEFAULT_MAX_ATTEMPTS + 2):
        await stack.outbox.dispatch_due()
        stack.clock.advance(timedelta(seconds=MAX_RETRY_DELAY_SECONDS + 1))
    row = await stack.row(mail_id)
    assert row.attempts == DEFAULT_MAX_ATTEMPTS  # no attempt beyond the maximum
    assert row.sent_at is None
    events = stack.recorder.of(EventType.MAIL_DELIVERY_FAILED)
    assert len(events) == 1
    assert events[0].subject == f"mail:{mail_id}"
    assert stack.inbox.received == []
