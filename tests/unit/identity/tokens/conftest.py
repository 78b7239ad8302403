"""Fixtures: a frozen clock, default settings, a key store with an active Ed25519 key."""

from __future__ import annotations

import pytest

from bastion.clock import FrozenClock
from bastion.identity.tokens import (
    AccessTokenService,
    AccessTokenSettings,
    AssuranceLevel,
    AuthMethod,
    InMemoryKeyStore,
)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def settings() -> AccessTokenSettings:
    return AccessTokenSettings(issuer="https://id.example.com", audience="https://api.example.com")


@pytest.fixture
async def service(clock: FrozenClock, settings: AccessTokenSettings) -> AccessTokenService:
    svc = AccessTokenService(settings, InMemoryKeyStore.from_settings(settings, clock), clock)
    await svc.ensure_active_key()
    return svc


@pytest.fixture
async def token(service: AccessTokenService) -> str:
    return await service.issue(
        subject="user-1",
        session_id="session-1",
        amr=[AuthMethod.PASSWORD, AuthMethod.OTP],
        acr=AssuranceLevel.AAL2,
    )
