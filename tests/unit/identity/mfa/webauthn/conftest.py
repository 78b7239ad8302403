"""The passkey service over a migrated database (SQLite and PostgreSQL), a frozen clock and a
software authenticator."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
from tests.common.passkeys import SoftwareAuthenticator
from tests.unit.identity.conftest import ListRecorder

from bastion.clock import FrozenClock
from bastion.identity.accounts.users import User, insert_user
from bastion.identity.emails import normalize_email
from bastion.identity.mfa.webauthn.ceremonies import RelyingParty
from bastion.identity.mfa.webauthn.challenges import ChallengeStore
from bastion.identity.mfa.webauthn.services import WebAuthnService
from bastion.storage import Database

RP_ID = "localhost"
ORIGIN = "http://localhost:8000"
TTL = timedelta(minutes=5)
MAX_CREDENTIALS = 3


@dataclass
class PasskeyStack:
    database: Database
    clock: FrozenClock
    service: WebAuthnService
    recorder: ListRecorder

    async def user(self, email: str = "ann@example.org", *, verified: bool = True) -> User:
        async with self.database.engine.begin() as connection:
            return await insert_user(
                connection,
                email=email,
                email_normalized=normalize_email(email),
                display_name="Ann",
                password_hash=None,
                now=self.clock.now(),
                email_verified=verified,
            )

    def authenticator(self, **options: object) -> SoftwareAuthenticator:
        return SoftwareAuthenticator(origin=ORIGIN, **options)  # type: ignore[arg-type]


@pytest.fixture
def passkeys(database: Database, clock: FrozenClock, recorder: ListRecorder) -> PasskeyStack:
    rp = RelyingParty(rp_id=RP_ID, rp_name="Bastion", origins=[ORIGIN], timeout_ms=60_000)
    service = WebAuthnService(
        database,
        rp,
        ChallengeStore(database, clock=clock, ttl=TTL),
        max_credentials=MAX_CREDENTIALS,
        audit=recorder,
        clock=clock,
    )
    return PasskeyStack(database, clock, service, recorder)
