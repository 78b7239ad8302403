"""The mail outbox and the mailers."""

from __future__ import annotations

import asyncio
import io
import json
import stat
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select
from tests.unit.identity.conftest import ListRecorder

from bastion.audit.events import EventType
from bastion.clock import FrozenClock
from bastion.crypto import EnvelopeCipher
from bastion.identity.mail import templates
from bastion.identity.mail.mailers import ConsoleMailer, FileMailer, InMemoryMailer
from bastion.identity.mail.models import mail_outbox
from bastion.identity.mail.services import Outbox
from bastion.storage import Database

TOKEN = "bst_verify_" + "T" * 43


async def _queue(outbox: Outbox, database: Database) -> None:
    async with database.engine.begin() as connection:
        await outbox.enqueue(connection, templates.verify_email("ann@example.org", TOKEN, 86_400))


async def _row(database: Database) -> dict[str, object]:
    async with database.engine.connect() as connection:
        return dict((await connection.execute(select(mail_outbox))).one()._mapping)


async def test_queued_mail_is_sealed_then_sent_and_blanked(
    database: Database, cipher: EnvelopeCipher, clock: FrozenClock
) -> None:
    mailer = InMemoryMailer()
    outbox = Outbox(database, mailer, cipher, clock=clock)
    await _queue(outbox, database)
    assert TOKEN not in str(await _row(database))
    assert await outbox.dispatch_due() == 1
    (mail,) = mailer.sent
    assert f"Token: {TOKEN}" in mail.text
    assert mail.kind.value == "verify_email"
    row = await _row(database)
    assert row["sent_at"] is not None
    assert row["body"] == ""
    assert await outbox.dispatch_due() == 0  # sent once


async def test_failures_are_retried_with_backoff_then_audited(
    database: Database, cipher: EnvelopeCipher, clock: FrozenClock, recorder: ListRecorder
) -> None:
    mailer = InMemoryMailer()
    mailer.fail = True
    outbox = Outbox(database, mailer, cipher, clock=clock, audit=recorder, max_attempts=3)
    await _queue(outbox, database)
    assert await outbox.dispatch_due() == 0
    assert await outbox.dispatch_due() == 0  # not due yet: backoff
    row = await _row(database)
    assert row["attempts"] == 1
    assert row["last_error"] == "mail_delivery_failed"
    for _ in range(2):
        clock.advance(timedelta(hours=1))
        await outbox.dispatch_due()
    assert (await _row(database))["attempts"] == 3
    assert recorder.of(EventType.MAIL_DELIVERY_FAILED)
    clock.advance(timedelta(hours=2))
    mailer.fail = False
    assert await outbox.dispatch_due() == 0  # given up after max_attempts


async def test_background_dispatch_delivers_promptly(
    database: Database, cipher: EnvelopeCipher, clock: FrozenClock
) -> None:
    mailer = InMemoryMailer()
    outbox = Outbox(database, mailer, cipher, clock=clock, poll_interval=60)
    await outbox.start()
    try:
        await _queue(outbox, database)
        outbox.wake()
        for _ in range(100):
            if mailer.sent:
                break
            await asyncio.sleep(0.02)
    finally:
        await outbox.aclose()
    assert len(mailer.sent) == 1


async def test_file_mailer_writes_private_json(tmp_path: Path) -> None:
    mailer = FileMailer(tmp_path / "mail")
    await mailer.send(templates.password_reset("ann@example.org", TOKEN, 1800))
    (path,) = (tmp_path / "mail").glob("*.json")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "mail").stat().st_mode) == 0o700
    document = json.loads(path.read_text())
    assert document["to"] == "ann@example.org"
    assert document["kind"] == "password_reset"
    assert f"\nToken: {TOKEN}\n" in document["text"]
    assert "30 minutes" in document["text"]


async def test_console_mailer_prints_to_its_stream() -> None:
    stream = io.StringIO()
    await ConsoleMailer(stream).send(templates.registration_attempt("ann@example.org"))
    assert "registration_attempt" in stream.getvalue()
    assert "ann@example.org" in stream.getvalue()


def test_tokens_never_travel_in_urls() -> None:
    for message in (
        templates.verify_email("a@b.c", TOKEN, 86_400),
        templates.confirm_new_email("a@b.c", TOKEN, 86_400),
        templates.password_reset("a@b.c", TOKEN, 1800),
    ):
        assert "://" not in message.text
        assert f"Token: {TOKEN}" in message.text
