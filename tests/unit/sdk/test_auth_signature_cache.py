"""BastionAuth (resource-server side) remembers successful signature checks, tied to the JWK Set
it fetched: a refetched set holds new key objects, so a key dropped from the set refuses its
tokens and a kept one verifies them in full once more."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from bastion.clock import FrozenClock
from bastion.identity.tokens import (
    AccessTokenService,
    AccessTokenSettings,
    AssuranceLevel,
    AuthMethod,
    InMemoryKeyStore,
    InvalidToken,
    InvalidTokenReason,
    SigningKey,
    access,
    jws,
)
from bastion.identity.tokens.keys import PublicKey
from bastion.sdk import BastionAuth
from bastion.sdk.auth import JwksCache

R = InvalidTokenReason
ISSUER = "https://id.example.com"
AUDIENCE = "orders-api"
JWKS_URL = f"{ISSUER}/.well-known/jwks.json"


class Bastion:
    """The issuing side: a key store and the JWK Set it publishes (which a test can edit)."""

    def __init__(self, clock: FrozenClock) -> None:
        self.settings = AccessTokenSettings(issuer=ISSUER, audience=AUDIENCE)
        self.tokens = AccessTokenService(
            self.settings, InMemoryKeyStore.from_settings(self.settings, clock), clock
        )
        self.published: list[dict[str, Any]] | None = None  # None: the store's own set

    async def issue(self) -> str:
        return await self.tokens.issue(
            subject="user-1", session_id="s-1", amr=[AuthMethod.PASSWORD], acr=AssuranceLevel.AAL1
        )

    async def handler(self, request: httpx.Request) -> httpx.Response:
        assert request.url == JWKS_URL
        keys = self.published if self.published is not None else (await self.tokens.jwks())["keys"]
        return httpx.Response(200, json={"keys": keys})


class Monotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
async def bastion(clock: FrozenClock) -> Bastion:
    issuer = Bastion(clock)
    await issuer.tokens.ensure_active_key()
    return issuer


@pytest.fixture
def monotonic() -> Monotonic:
    return Monotonic()


@pytest.fixture
async def auth(
    bastion: Bastion, clock: FrozenClock, monotonic: Monotonic
) -> AsyncIterator[BastionAuth]:
    transport = httpx.MockTransport(bastion.handler)
    async with httpx.AsyncClient(transport=transport) as client:
        sdk = BastionAuth(
            issuer=ISSUER, audience=AUDIENCE, jwks_url=JWKS_URL, client=client, clock=clock
        )
        sdk.jwks = JwksCache(JWKS_URL, client=client, cache_seconds=300, monotonic=monotonic)
        yield sdk


@pytest.fixture
def signature_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    checked: list[str] = []
    real = jws.verify_compact

    def counting(token: str, key: SigningKey | PublicKey) -> bytes:
        checked.append(token)
        return real(token, key)

    monkeypatch.setattr(access, "verify_compact", counting)
    return checked


async def _refused(auth: BastionAuth, token: str) -> R:
    with pytest.raises(InvalidToken) as info:
        await auth.verify(token)
    return info.value.reason


async def test_a_token_seen_again_is_not_checked_again(
    auth: BastionAuth, bastion: Bastion, clock: FrozenClock, signature_checks: list[str]
) -> None:
    token = await bastion.issue()
    first = await auth.verify(token)
    assert [await auth.verify(token) for _ in range(3)] == [first] * 3
    assert signature_checks == [token]
    # Switched off: every use is a full check, with the same answer.
    plain = BastionAuth(
        issuer=ISSUER, audience=AUDIENCE, jwks_url=JWKS_URL, clock=clock, signature_cache=False
    )
    plain.jwks = auth.jwks
    assert plain.signature_cache is None
    assert await plain.verify(token) == await plain.verify(token) == first
    assert len(signature_checks) == 3
    await plain.aclose()


async def test_a_flipped_signature_is_refused_with_the_token_cached(
    auth: BastionAuth, bastion: Bastion
) -> None:
    token = await bastion.issue()
    await auth.verify(token)
    header, payload, signature = token.split(".")
    middle = len(signature) // 2
    flipped = (
        signature[:middle] + ("B" if signature[middle] != "B" else "C") + signature[middle + 1 :]
    )
    assert await _refused(auth, f"{header}.{payload}.{flipped}") is R.BAD_SIGNATURE
    assert await auth.verify(token)


async def test_a_cached_token_past_expiry_is_refused(
    auth: BastionAuth, bastion: Bastion, clock: FrozenClock
) -> None:
    token = await bastion.issue()
    claims = await auth.verify(token)
    clock.advance(claims.claims.expires_at - clock.now() + timedelta(seconds=30))
    assert await _refused(auth, token) is R.EXPIRED


async def test_a_key_dropped_from_the_jwk_set_refuses_its_cached_tokens(
    auth: BastionAuth,
    bastion: Bastion,
    clock: FrozenClock,
    monotonic: Monotonic,
    signature_checks: list[str],
) -> None:
    token = await bastion.issue()
    await auth.verify(token)
    await auth.verify(token)
    assert signature_checks == [token]
    # Bastion now publishes another key only (the first one withdrawn).
    other = SigningKey.generate(clock=clock, lifetime=timedelta(days=1))
    bastion.published = [other.public_jwk()]
    monotonic.now += 300  # the cached set is due for a refetch
    assert await _refused(auth, token) is R.UNKNOWN_KID
    assert auth.jwks.fetches == 2
    # Published again: new key objects, so one full check, then cached again.
    bastion.published = None
    monotonic.now += 300
    assert await auth.verify(token)
    assert await auth.verify(token)
    assert signature_checks == [token, token]
