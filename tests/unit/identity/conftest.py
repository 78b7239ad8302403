"""Shared fixtures of the identity unit tests: an audit recorder that keeps events in a list,
a cipher, and the session stack over a migrated database (SQLite and PostgreSQL)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
from pydantic import SecretStr

from bastion.audit.events import AuditEvent, EventType
from bastion.clock import FrozenClock
from bastion.crypto import EnvelopeCipher, Keyring
from bastion.identity.accounts.users import User, insert_user
from bastion.identity.emails import normalize_email
from bastion.identity.sessions.revocation import RevocationCache
from bastion.identity.sessions.services import SessionService
from bastion.identity.tokens import AccessTokenService, AccessTokenSettings
from bastion.identity.tokens.rotation import SigningKeyManager
from bastion.identity.tokens.sqlstore import DatabaseKeyStore
from bastion.storage import Database

SECRET = "unit-test-secret-key-0123456789abcdef"


class ListRecorder:
    """An :class:`~bastion.audit.interfaces.AuditRecorder` keeping events in memory."""

    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    def record(self, event: AuditEvent) -> None:
        self.events.append(event)

    def of(self, type_: EventType) -> list[AuditEvent]:
        return [e for e in self.events if e.type is type_]

    async def start(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


@pytest.fixture
def recorder() -> ListRecorder:
    return ListRecorder()


@pytest.fixture
def cipher() -> EnvelopeCipher:
    return EnvelopeCipher.from_keyring(Keyring(SecretStr(SECRET)))


@dataclass
class SessionStack:
    database: Database
    clock: FrozenClock
    sessions: SessionService
    revocations: RevocationCache
    tokens: AccessTokenService
    recorder: ListRecorder

    async def user(self, email: str = "ann@example.org") -> User:
        async with self.database.engine.begin() as connection:
            return await insert_user(
                connection,
                email=email,
                email_normalized=normalize_email(email),
                display_name="Ann",
                password_hash=None,
                now=self.clock.now(),
                email_verified=True,
            )


@pytest.fixture
def stack(
    database: Database, clock: FrozenClock, cipher: EnvelopeCipher, recorder: ListRecorder
) -> SessionStack:
    settings = AccessTokenSettings()
    keys = DatabaseKeyStore(database, cipher, clock, grace=settings.verification_grace)
    tokens = AccessTokenService(settings, keys, clock)
    revocations = RevocationCache(
        database, clock, bound_seconds=5, window=settings.verification_grace
    )
    sessions = SessionService(
        database,
        tokens,
        cipher,
        revocations,
        signing=SigningKeyManager(tokens, audit=recorder, clock=clock),
        audit=recorder,
        clock=clock,
        idle=timedelta(hours=1),
        absolute=timedelta(days=1),
        refresh_grace=timedelta(seconds=10),
    )
    return SessionStack(database, clock, sessions, revocations, tokens, recorder)
