"""The clean-up of ended rows, on a frozen clock (SQLite and PostgreSQL): what ended more than
the retention ago goes, everything live or recently ended stays."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Table, insert, select

from bastion.clock import FrozenClock
from bastion.identity import cleanup as cleanup_module
from bastion.identity.accounts.models import account_tokens
from bastion.identity.accounts.users import insert_user
from bastion.identity.cleanup import Cleanup, CleanupReport
from bastion.identity.mail.models import mail_outbox
from bastion.identity.mfa.models import mfa_challenges
from bastion.identity.sessions.models import refresh_tokens, sessions
from bastion.storage import Database

RETENTION = timedelta(days=7)
IDLE = timedelta(days=3)
WINDOW = timedelta(minutes=10)
LONG_AGO = timedelta(days=30)
RECENTLY = timedelta(days=1)


class Rows:
    def __init__(self, database: Database, now: datetime, user_id: str) -> None:
        self.database = database
        self.now = now
        self.user_id = user_id

    async def _insert(self, table: Table, **values: Any) -> None:
        async with self.database.engine.begin() as connection:
            await connection.execute(insert(table).values(**values))

    async def session(self, name: str, **times: timedelta) -> str:
        """A session with one used and one fresh refresh token; ``times`` are ages."""
        session_id = f"{name}-{uuid.uuid4().hex[:8]}"
        created = self.now - times.get("created", timedelta(hours=1))
        await self._insert(
            sessions,
            id=session_id,
            user_id=self.user_id,
            created_at=created,
            last_seen_at=self.now - times.get("seen", timedelta(minutes=1)),
            absolute_expires_at=self.now - times["expired"]
            if "expired" in times
            else self.now + timedelta(days=20),
            amr=["pwd"],
            acr="aal1",
            transport="bearer",
            revoked_at=self.now - times["revoked"] if "revoked" in times else None,
        )
        for used in (True, False):
            await self._insert(
                refresh_tokens,
                token_hash=uuid.uuid4().hex + uuid.uuid4().hex,
                session_id=session_id,
                created_at=created,
                used_at=created if used else None,
            )
        return session_id

    async def account_token(self, name: str, **times: timedelta) -> str:
        token_hash = f"{name}-{uuid.uuid4().hex}"[:64]
        expires = times.get("expires_in", timedelta(hours=1))
        await self._insert(
            account_tokens,
            token_hash=token_hash,
            user_id=self.user_id,
            purpose="password_reset",
            created_at=self.now - timedelta(hours=1),
            expires_at=self.now + expires,
            consumed_at=self.now - times["consumed"] if "consumed" in times else None,
        )
        return token_hash

    async def mail(self, name: str, *, created: timedelta, sent: timedelta | None) -> str:
        mail_id = f"{name}-{uuid.uuid4().hex[:8]}"
        await self._insert(
            mail_outbox,
            id=mail_id,
            recipient="ann@example.org",
            subject="s",
            body="" if sent is not None else "sealed",
            kind="password_reset",
            created_at=self.now - created,
            next_attempt_at=self.now - created,
            sent_at=self.now - sent if sent is not None else None,
            attempts=1 if sent is not None else 8,
        )
        return mail_id

    async def mfa_challenge(
        self, name: str, *, expires_in: timedelta, used: timedelta | None
    ) -> str:
        token_hash = f"{name}-{uuid.uuid4().hex}"[:64]
        await self._insert(
            mfa_challenges,
            token_hash=token_hash,
            user_id=self.user_id,
            transport="bearer",
            created_at=self.now + expires_in - timedelta(minutes=5),
            expires_at=self.now + expires_in,
            used_at=self.now - used if used is not None else None,
            failures=0,
        )
        return token_hash


async def _ids(database: Database, table: Table, column: str = "id") -> set[str]:
    async with database.engine.connect() as connection:
        return set((await connection.execute(select(table.c[column]))).scalars())


@pytest.fixture
async def rows(database: Database, clock: FrozenClock) -> Rows:
    async with database.engine.begin() as connection:
        user = await insert_user(
            connection,
            email="ann@example.org",
            email_normalized="ann@example.org",
            display_name="Ann",
            password_hash=None,
            now=clock.now() - LONG_AGO,
        )
    return Rows(database, clock.now(), user.id)


def _cleanup(database: Database, clock: FrozenClock, window: timedelta = WINDOW) -> Cleanup:
    return Cleanup(database, clock, retention=RETENTION, idle=IDLE, revocation_window=window)


async def test_ended_rows_go_and_live_rows_stay(
    database: Database, clock: FrozenClock, rows: Rows
) -> None:
    live = {
        await rows.session("live"),
        await rows.session("revoked-recently", revoked=RECENTLY),
        await rows.session("expired-recently", created=LONG_AGO, expired=RECENTLY),
        await rows.session("idle-recently", seen=IDLE + RECENTLY),
    }
    ended = {
        await rows.session("revoked", revoked=LONG_AGO),
        await rows.session("expired", created=2 * LONG_AGO, expired=LONG_AGO),
        await rows.session("idle", seen=IDLE + RETENTION + RECENTLY),
    }
    kept_tokens = {
        await rows.account_token("unused"),
        await rows.account_token("used-recently", consumed=RECENTLY),
        await rows.account_token("expired-recently", expires_in=-RECENTLY),
    }
    await rows.account_token("used", consumed=LONG_AGO)
    await rows.account_token("expired", expires_in=-LONG_AGO)
    kept_mails = {
        await rows.mail("queued", created=timedelta(minutes=1), sent=None),
        await rows.mail("sent-recently", created=RECENTLY, sent=RECENTLY),
        await rows.mail("failing-recently", created=RECENTLY, sent=None),
    }
    await rows.mail("sent", created=LONG_AGO, sent=LONG_AGO)
    await rows.mail("undeliverable", created=LONG_AGO, sent=None)

    report = await _cleanup(database, clock).run()

    assert report == CleanupReport(sessions=3, refresh_tokens=6, account_tokens=2, mails=2)
    assert await _ids(database, sessions) == live
    assert not ended & await _ids(database, refresh_tokens, "session_id")
    assert await _ids(database, refresh_tokens, "session_id") == live
    assert await _ids(database, account_tokens, "token_hash") == kept_tokens
    assert await _ids(database, mail_outbox) == kept_mails
    # Nothing more is due: a second run deletes nothing.
    assert await _cleanup(database, clock).run() == CleanupReport()

    # A week on, the recently ended ones have passed the retention too.
    clock.advance(RETENTION)
    later = await _cleanup(database, clock).run()
    assert later.sessions == 3
    assert await _ids(database, sessions) == {s for s in live if s.startswith("live")}


async def test_a_revoked_session_outlives_its_access_tokens(
    database: Database, clock: FrozenClock, rows: Rows
) -> None:
    # Were the revocation window longer than the retention, the revocation must stay visible
    # to the revocation cache until the session's last access token has expired.
    revoked = await rows.session("revoked", revoked=RETENTION + RECENTLY)
    long_window = RETENTION + 2 * RECENTLY
    assert (await _cleanup(database, clock, long_window).run()).sessions == 0
    assert await _ids(database, sessions) == {revoked}
    assert (await _cleanup(database, clock).run()).sessions == 1


async def test_large_backlogs_go_in_batches(
    database: Database, clock: FrozenClock, rows: Rows, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cleanup_module, "BATCH_SIZE", 2)
    for n in range(5):
        await rows.session(f"old{n}", revoked=LONG_AGO)
        await rows.account_token(f"old{n}", consumed=LONG_AGO)
    await rows.session("live")
    report = await _cleanup(database, clock).run()
    assert (report.sessions, report.refresh_tokens, report.account_tokens) == (5, 10, 5)
    assert len(await _ids(database, sessions)) == 1


async def test_used_and_expired_mfa_challenges_go(
    database: Database, clock: FrozenClock, rows: Rows
) -> None:
    kept = {
        await rows.mfa_challenge("open", expires_in=timedelta(minutes=4), used=None),
        await rows.mfa_challenge("used-recently", expires_in=-RECENTLY, used=RECENTLY),
        await rows.mfa_challenge("expired-recently", expires_in=-RECENTLY, used=None),
    }
    await rows.mfa_challenge("used", expires_in=-LONG_AGO, used=LONG_AGO)
    await rows.mfa_challenge("expired", expires_in=-LONG_AGO, used=None)
    report = await _cleanup(database, clock).run()
    assert report.mfa_challenges == 2
    assert await _ids(database, mfa_challenges, "token_hash") == kept
