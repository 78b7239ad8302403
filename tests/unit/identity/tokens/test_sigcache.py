"""The cache of successful signature checks (:mod:`bastion.identity.tokens.sigcache`): a hit
skips the signature check and nothing else, and no attack gets through a warm cache.

Each attack test first has the valid token answered from the cache, then presents the attack;
it would be accepted by a cache missing the safeguard it names (digest of the whole token,
key identity, claim tests on every hit, successes only, bound).
"""

from __future__ import annotations

import gc
import json
import tracemalloc
import uuid
from collections.abc import Awaitable
from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import delete
from starlette.requests import Request
from tests.unit.identity.conftest import SessionStack
from tests.unit.identity.tokens import forge
from tests.unit.identity.tokens.test_attacks import ATTACKS, Ctx

from bastion.clock import FrozenClock
from bastion.identity.sessions.auth import Authenticator
from bastion.identity.sessions.services import RevokeReason
from bastion.identity.sessions.transport import CsrfProtection
from bastion.identity.tokens import (
    AccessTokenClaims,
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
from bastion.identity.tokens.access import verify_access_token_with
from bastion.identity.tokens.keys import PublicKey
from bastion.identity.tokens.models import signing_keys
from bastion.identity.tokens.sigcache import MAX_ENTRIES, SignatureCache, token_digest

R = InvalidTokenReason
PWD = [AuthMethod.PASSWORD]
LEEWAY = 30


@pytest.fixture
def signature_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every signature check the verifier makes, by token."""
    checked: list[str] = []
    real = jws.verify_compact

    def counting(token: str, key: SigningKey | PublicKey) -> bytes:
        checked.append(token)
        return real(token, key)

    monkeypatch.setattr(access, "verify_compact", counting)
    return checked


async def _refused(verification: Awaitable[Any]) -> R:
    with pytest.raises(InvalidToken) as info:
        await verification
    return info.value.reason


async def _issue(service: AccessTokenService, **kwargs: Any) -> str:
    return await service.issue(
        subject="user-1", session_id="session-1", amr=PWD, acr=AssuranceLevel.AAL1, **kwargs
    )


def _flip(token: str, segment: int, position: int) -> str:
    """``token`` with one base64url character of ``segment`` changed (every bit it carries
    changes: never only the padding bits of a final character)."""
    parts = token.split(".")
    chars = list(parts[segment])
    chars[position] = "B" if chars[position] != "B" else "C"
    parts[segment] = "".join(chars)
    return ".".join(parts)


class Keys:
    """A key lookup the test controls: keys can be removed or replaced under their kid."""

    def __init__(self, *keys: SigningKey) -> None:
        self.by_kid: dict[str, SigningKey] = {key.kid: key for key in keys}

    async def get(self, kid: str) -> SigningKey | None:
        return self.by_kid.get(kid)


# -- the cache does its job, and answers exactly like a full verification ---------------------


async def test_a_token_seen_again_skips_only_the_signature_check(
    service: AccessTokenService, token: str, signature_checks: list[str]
) -> None:
    uncached = AccessTokenService(
        service.settings.model_copy(update={"signature_cache": False}), service.keys, service.clock
    )
    assert uncached.signature_cache is None
    full = await uncached.verify(token)
    first = await service.verify(token)
    again = [await service.verify(token) for _ in range(5)]
    assert signature_checks == [token, token]  # the uncached verifier's, then the first miss
    assert all(claims == full == first for claims in again)
    assert isinstance(first, AccessTokenClaims)
    assert len(service.signature_cache or ()) == 1
    # Switched off, every use is a full check.
    await uncached.verify(token)
    assert len(signature_checks) == 3


async def test_the_settings_switch_and_bound_it(clock: FrozenClock) -> None:
    assert AccessTokenSettings().signature_cache is True
    assert AccessTokenSettings().signature_cache_entries == 4096
    small = AccessTokenSettings(signature_cache_entries=3)
    service = AccessTokenService(small, InMemoryKeyStore.from_settings(small, clock), clock)
    assert service.signature_cache is not None
    assert service.signature_cache.max_entries == 3
    for absurd in (0, -1, MAX_ENTRIES + 1):
        with pytest.raises(ValidationError):
            AccessTokenSettings(signature_cache_entries=absurd)
        with pytest.raises(ValueError, match="max_entries"):
            SignatureCache(absurd)


async def test_failures_are_never_remembered(
    service: AccessTokenService, clock: FrozenClock, signature_checks: list[str]
) -> None:
    key = await service.keys.active_key()
    bad_signature = forge.ed25519(key, {"alg": "EdDSA", "kid": key.kid, "typ": "at+jwt"}, b"{}")
    bad_signature = _flip(bad_signature, 2, 10)
    other_audience = await _issue(service, audience="https://other.example.com")
    for _ in range(3):
        assert await _refused(service.verify(bad_signature)) is R.BAD_SIGNATURE
        # A good signature whose claims fail for this verifier is not remembered either.
        assert await _refused(service.verify(other_audience)) is R.WRONG_AUDIENCE
    assert signature_checks == [bad_signature, other_audience] * 3
    assert len(service.signature_cache or ()) == 0


# -- attacks against a warm cache ----------------------------------------------------------


async def test_a_flipped_signature_byte_is_refused_after_the_token_was_cached(
    service: AccessTokenService, token: str
) -> None:
    await service.verify(token)
    await service.verify(token)  # answered from the cache
    signature_length = len(token.split(".")[2])
    for position in (0, signature_length // 2, signature_length - 2):
        forged = _flip(token, 2, position)
        assert await _refused(service.verify(forged)) is R.BAD_SIGNATURE
    # A payload byte (the jti's) or a trailing character changed: another token, refused.
    assert await _refused(service.verify(_flip(token, 1, 20))) in {
        R.BAD_SIGNATURE,
        R.MALFORMED,
    }
    assert await _refused(service.verify(token + "A")) is R.BAD_SIGNATURE
    assert await service.verify(token)  # the genuine one still passes


async def test_the_same_payload_with_another_signature_is_refused(
    service: AccessTokenService, token: str, clock: FrozenClock
) -> None:
    await service.verify(token)
    header, payload, _ = token.split(".")
    attacker = SigningKey.generate(clock=clock, lifetime=timedelta(days=1))
    resigned = forge.ed25519(attacker, forge.unb64(header), forge.unb64(payload))
    assert resigned.split(".")[:2] == [header, payload]
    assert await _refused(service.verify(resigned)) is R.BAD_SIGNATURE
    # The signature of another valid token of the same key, pasted onto this payload.
    other = await _issue(service)
    await service.verify(other)
    pasted = f"{header}.{payload}.{other.split('.')[2]}"
    assert await _refused(service.verify(pasted)) is R.BAD_SIGNATURE


async def test_a_cached_token_past_its_expiry_is_refused(
    service: AccessTokenService, token: str, clock: FrozenClock
) -> None:
    claims = await service.verify(token)
    cache = service.signature_cache
    assert cache is not None
    clock.advance(claims.expires_at - clock.now() + timedelta(seconds=LEEWAY - 1))
    assert await service.verify(token) == claims  # within the leeway: accepted, from the cache
    clock.advance(timedelta(seconds=1))  # exp <= now - leeway
    assert await _refused(service.verify(token)) is R.EXPIRED
    assert len(cache) == 0  # and the entry is gone


async def test_every_claim_test_runs_on_a_hit(
    service: AccessTokenService, token: str, clock: FrozenClock, signature_checks: list[str]
) -> None:
    await service.verify(token)
    assert signature_checks == [token]
    # Another audience asked of the same verifier: refused although the token is cached.
    refusal = await _refused(service.verify(token, audience="https://other.example.com"))
    assert refusal is R.WRONG_AUDIENCE
    # Another issuer expected (the same cache, other settings): refused.
    other_issuer = service.settings.model_copy(update={"issuer": "https://evil.example.com"})

    async def with_other_issuer() -> AccessTokenClaims:
        return await verify_access_token_with(
            token, service.keys.get, other_issuer, clock=clock, cache=service.signature_cache
        )

    assert await _refused(with_other_issuer()) is R.WRONG_ISSUER
    # A wall clock set back before nbf - leeway: refused, not revived by the cache.
    clock.advance(timedelta(seconds=-LEEWAY - 1))
    assert await _refused(service.verify(token)) is R.NOT_YET_VALID
    assert signature_checks == [token]  # all of the above were cache hits


async def test_a_key_removed_after_caching_refuses_its_tokens(
    settings: AccessTokenSettings, clock: FrozenClock, signature_checks: list[str]
) -> None:
    key = SigningKey.generate(clock=clock, lifetime=timedelta(days=1))
    keys = Keys(key)
    cache = SignatureCache()
    token = await access.issue_access_token(
        InMemoryKeyStore.from_settings(settings, clock),
        settings,
        subject="user-1",
        session_id="session-1",
        amr=PWD,
        acr=AssuranceLevel.AAL1,
        clock=clock,
        key=key,
    )

    async def verify() -> AccessTokenClaims:
        return await verify_access_token_with(token, keys.get, settings, clock=clock, cache=cache)

    await verify()
    await verify()
    assert len(signature_checks) == 1
    del keys.by_kid[key.kid]  # the key store no longer has it
    assert await _refused(verify()) is R.UNKNOWN_KID
    # Another key under the same kid (a reload that does not hold the original any more):
    # the entry belongs to the old key object, so the token is checked against the new one.
    impostor = SigningKey.generate(clock=clock, lifetime=timedelta(days=1))
    keys.by_kid[key.kid] = SigningKey(
        key.kid, key.algorithm, key.created_at, key.not_after, impostor.key
    )
    assert await _refused(verify()) is R.BAD_SIGNATURE
    assert len(signature_checks) == 2
    # The same key material loaded again (a new object): verified in full once, then cached.
    keys.by_kid[key.kid] = SigningKey(
        key.kid, key.algorithm, key.created_at, key.not_after, key.key
    )
    assert await verify()
    assert len(signature_checks) == 3
    # Retirement keeps the key object (SigningKey.retired): its tokens stay valid and cached.
    keys.by_kid[key.kid] = key.retired(clock.now())
    assert await verify()
    assert len(signature_checks) == 3
    cache.clear()
    assert len(cache) == 0


async def test_a_rotation_keeps_the_retired_keys_tokens_cached(
    service: AccessTokenService, token: str, signature_checks: list[str]
) -> None:
    await service.verify(token)
    await service.ensure_active_key()
    new_key = SigningKey.generate(clock=service.clock, lifetime=timedelta(days=1))
    await service.keys.rotate(new_key)
    assert await service.verify(token)  # the retired key still verifies its tokens
    fresh = await _issue(service)
    assert (await service.verify(fresh)).kid == new_key.kid
    assert signature_checks == [token, fresh]


async def test_alg_none_and_hs256_are_refused_with_a_valid_token_cached(
    service: AccessTokenService, token: str
) -> None:
    await service.verify(token)
    key = await service.keys.active_key()
    _, payload, signature = token.split(".")
    for alg in ("none", "None", "HS256"):
        header = forge.encode({"alg": alg, "kid": key.kid, "typ": "at+jwt"})
        # The cached token's own payload and signature under a confused header.
        reused = f"{header}.{payload}.{signature}"
        refusal = await _refused(service.verify(reused))
        assert refusal is R.ALGORITHM_NOT_ALLOWED
    hs256 = forge.hs256(
        forge.unb64(key.public_jwk()["x"]),
        {"alg": "HS256", "kid": key.kid, "typ": "at+jwt"},
        json.loads(forge.unb64(payload)),
    )
    assert await _refused(service.verify(hs256)) is R.ALGORITHM_NOT_ALLOWED
    stripped = f"{forge.encode({'alg': 'none', 'kid': key.kid, 'typ': 'at+jwt'})}.{payload}."
    assert await _refused(service.verify(stripped)) is R.MALFORMED


async def test_the_cache_stays_bounded_under_a_flood_of_valid_tokens(
    clock: FrozenClock, signature_checks: list[str]
) -> None:
    settings = AccessTokenSettings(signature_cache_entries=8)
    service = AccessTokenService(settings, InMemoryKeyStore.from_settings(settings, clock), clock)
    await service.ensure_active_key()
    tokens = [await _issue(service) for _ in range(50)]
    for token in tokens:
        await service.verify(token)
    cache = service.signature_cache
    assert cache is not None
    assert len(cache) == 8
    # The newest eight are cached; the evicted ones are verified in full again, and pass.
    checks = len(signature_checks)
    for token in tokens[-8:]:
        await service.verify(token)
    assert len(signature_checks) == checks
    await service.verify(tokens[0])
    assert len(signature_checks) == checks + 1
    assert len(cache) == 8


def test_expired_entries_are_purged_from_the_old_end() -> None:
    cache = SignatureCache(10)
    key = object()
    for n in range(5):
        cache.put(token_digest(f"t{n}"), key, {}, drop_at=100 + n, now=0)
    cache.put(token_digest("late"), key, {}, drop_at=500, now=102)  # t0..t2 have expired
    assert len(cache) == 3
    assert cache.get(token_digest("t3"), key, 102) is not None
    assert cache.get(token_digest("t0"), key, 102) is None
    assert cache.get(token_digest("t3"), object(), 102) is None  # another key object
    assert cache.get(token_digest("t3"), key, 102) is None  # ... and the entry was dropped
    assert cache.get(token_digest("t4"), key, 104) is None  # at drop_at: gone
    assert len(cache) == 1


def test_the_key_is_the_digest_of_the_whole_token() -> None:
    token = "aaa.bbb.ccc"
    assert token_digest(token) != token_digest(token[:-1] + "d")
    assert token_digest(token) != token_digest(token + "c")
    assert len(token_digest(token)) == 32
    assert token_digest("\ud800") != token_digest("")  # never raises for any str


# -- revocation still applies after the cache ------------------------------------------------


def _request(token: str) -> Request:
    scope: dict[str, Any] = {
        "type": "http",
        "method": "GET",
        "path": "/v1/account",
        "headers": [(b"authorization", f"Bearer {token}".encode())],
        "client": ("192.0.2.1", 1234),
        "state": {},
    }
    return Request(scope)


@pytest.fixture
def authenticator(stack: SessionStack) -> Authenticator:
    return Authenticator(
        stack.tokens,
        stack.revocations,
        CsrfProtection(b"k" * 32, trusted_origins=[]),
        audit=stack.recorder,
        clock=stack.clock,
    )


async def test_a_revoked_sessions_cached_token_is_refused(
    stack: SessionStack, authenticator: Authenticator, signature_checks: list[str]
) -> None:
    user = await stack.user()
    issued = await stack.sessions.create(
        user.id,
        amr=PWD,
        acr=AssuranceLevel.AAL1,
        transport="bearer",
        ip="192.0.2.1",
        user_agent=None,
    )
    token = issued.access_token
    assert (await authenticator.authenticate(_request(token))).user_id == user.id
    assert await stack.tokens.verify(token)  # a signature-cache hit
    assert signature_checks == [token]
    assert await stack.sessions.revoke(
        issued.session_id, user_id=user.id, reason=RevokeReason.LOGOUT
    )
    assert await _refused(authenticator.authenticate(_request(token))) is (R.SESSION_REVOKED)
    # The token itself still verifies (from the cache): only the revocation check refuses it.
    assert await stack.tokens.verify(token)
    assert signature_checks == [token]


async def test_an_entry_stays_small(clock: FrozenClock) -> None:
    settings = AccessTokenSettings(issuer="https://id.example.com", audience="https://api.example")
    service = AccessTokenService(settings, InMemoryKeyStore.from_settings(settings, clock), clock)
    await service.ensure_active_key()
    tokens = [
        await service.issue(
            subject=str(uuid.uuid4()),
            session_id=str(uuid.uuid4()),
            amr=PWD,
            acr=AssuranceLevel.AAL1,
        )
        for _ in range(300)
    ]
    await service.verify(tokens[0])
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for token in tokens[1:]:
            await service.verify(token)
        gc.collect()
        retained = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(service.signature_cache or ()) == 300
    assert retained / 299 < 2048  # about 1.2 KB: a digest, a key reference, the claims


async def test_every_attack_gets_the_same_answer_with_a_warm_cache_and_without(
    service: AccessTokenService, clock: FrozenClock, token: str
) -> None:
    """The whole attack table of test_attacks.py, against a verifier whose cache holds the
    valid token (twice verified) and one without a cache: the same reason every time."""
    uncached = AccessTokenService(
        service.settings.model_copy(update={"signature_cache": False}), service.keys, clock
    )
    ctx = Ctx(service, await service.keys.active_key(), clock, token)
    await service.verify(token)
    await service.verify(token)
    for name, (reason, build) in ATTACKS.items():
        attack = build(ctx)
        warm = await _refused(service.verify(attack))
        cold = await _refused(uncached.verify(attack))
        assert warm is cold is reason, name
    assert len(service.signature_cache or ()) == 1  # no refusal was remembered


async def test_the_database_key_store_keeps_hits_across_reloads_and_refuses_a_deleted_key(
    stack: SessionStack, signature_checks: list[str]
) -> None:
    """The shared key store reloads its table every 10 s, keeping each key's object: cached
    tokens stay hits. A key deleted from the table is gone after the next reload, and so are
    its tokens, cached or not."""
    await stack.tokens.ensure_active_key()
    token = await _issue(stack.tokens)
    await stack.tokens.verify(token)
    stack.clock.advance(timedelta(seconds=11))  # past the store's refresh interval
    await stack.tokens.verify(token)
    assert signature_checks == [token]
    async with stack.database.engine.begin() as connection:
        await connection.execute(delete(signing_keys))
    stack.clock.advance(timedelta(seconds=11))
    assert await _refused(stack.tokens.verify(token)) is R.UNKNOWN_KID
    assert signature_checks == [token]
