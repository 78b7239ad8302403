"""Signing keys: thumbprint kids, curve checks, sealing for storage, JWK Set, the key store."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta

import pytest
from joserfc.jwk import OKPKey
from pydantic import SecretStr

from bastion.clock import FrozenClock
from bastion.crypto import DecryptionFailed, DecryptionFailure, EnvelopeCipher, Keyring
from bastion.identity.tokens import (
    InMemoryKeyStore,
    SigningAlgorithm,
    SigningKey,
    SigningKeyError,
    jwks,
    seal,
    unseal,
)

DAY = timedelta(days=1)


@pytest.fixture
def cipher() -> EnvelopeCipher:
    return EnvelopeCipher.from_keyring(
        Keyring(SecretStr("root-secret-key-for-tests-0123456789abcdef"))
    )


def _key(clock: FrozenClock, algorithm: SigningAlgorithm = SigningAlgorithm.EDDSA) -> SigningKey:
    return SigningKey.generate(algorithm, clock=clock, lifetime=DAY)


def test_kid_is_the_rfc7638_thumbprint(clock: FrozenClock) -> None:
    key = _key(clock)
    assert key.kid == key.key.thumbprint()
    assert len(key.kid) == 43
    assert _key(clock).kid != key.kid


@pytest.mark.parametrize("algorithm", list(SigningAlgorithm))
def test_public_jwk_has_no_private_member(clock: FrozenClock, algorithm: SigningAlgorithm) -> None:
    key = _key(clock, algorithm)
    public = key.public_jwk()
    assert "d" not in public
    expected = {"kty", "crv", "x", "kid", "alg", "use"} | (
        {"y"} if algorithm.key_type == "EC" else set()
    )
    assert set(public) == expected
    assert (public["alg"], public["use"], public["kid"]) == (algorithm.value, "sig", key.kid)
    set_ = jwks([key])
    assert set_ == {"keys": [public]}
    assert '"d"' not in json.dumps(set_)


def test_private_key_never_in_repr(clock: FrozenClock, cipher: EnvelopeCipher) -> None:
    key = _key(clock)
    d = key.key.as_dict(private=True)["d"]
    sealed = seal(key, cipher)
    for text in (repr(key), str(key), repr(sealed)):
        assert d not in text
        assert sealed.sealed_private_key not in text


def test_seal_round_trip(clock: FrozenClock, cipher: EnvelopeCipher) -> None:
    for algorithm in SigningAlgorithm:
        key = _key(clock, algorithm)
        sealed = seal(key, cipher)
        assert key.key.as_dict(private=True)["d"] not in sealed.sealed_private_key
        opened = unseal(sealed, cipher)
        assert opened == key
        assert opened.key.as_dict(private=True) == key.key.as_dict(private=True)


def test_sealed_key_moved_to_another_row_does_not_open(
    clock: FrozenClock, cipher: EnvelopeCipher
) -> None:
    # Threat: someone with database write access swaps the encrypted private key of one row
    # into another (e.g. to make a key they control appear under a trusted kid).
    a, b = seal(_key(clock), cipher), seal(_key(clock), cipher)
    swapped = dataclasses.replace(a, sealed_private_key=b.sealed_private_key)
    with pytest.raises(DecryptionFailed) as info:
        unseal(swapped, cipher)
    assert info.value.reason is DecryptionFailure.AUTHENTICATION_FAILED
    relabelled = dataclasses.replace(a, algorithm=SigningAlgorithm.ED25519)
    with pytest.raises(DecryptionFailed):
        unseal(relabelled, cipher)


def test_sealed_key_needs_the_root_key(clock: FrozenClock, cipher: EnvelopeCipher) -> None:
    sealed = seal(_key(clock), cipher)
    other = EnvelopeCipher.from_keyring(Keyring(SecretStr("another-root-secret-key-0123456789abc")))
    with pytest.raises(DecryptionFailed):
        unseal(sealed, other)


def test_wrong_curves_and_public_keys_are_refused(clock: FrozenClock) -> None:
    ed448 = OKPKey.generate_key("Ed448").as_dict(private=True)
    when = {"created_at": clock.now(), "not_after": clock.now() + DAY}
    with pytest.raises(SigningKeyError, match="Ed25519"):
        SigningKey.from_private_jwk(ed448, algorithm=SigningAlgorithm.EDDSA, **when)
    ec = _key(clock, SigningAlgorithm.ES256).key.as_dict(private=True)
    with pytest.raises(SigningKeyError, match="kty"):
        SigningKey.from_private_jwk(ec, algorithm=SigningAlgorithm.EDDSA, **when)
    public = _key(clock).public_jwk()
    with pytest.raises(SigningKeyError, match="private"):
        SigningKey.from_private_jwk(public, algorithm=SigningAlgorithm.EDDSA, **when)
    with pytest.raises(SigningKeyError, match="valid JWK"):
        SigningKey.from_private_jwk({"kty": "OKP"}, algorithm=SigningAlgorithm.EDDSA, **when)
    with pytest.raises(SigningKeyError, match="not_after"):
        SigningKey.generate(clock=clock, lifetime=timedelta(0))


async def test_key_store_active_and_verification_windows(clock: FrozenClock) -> None:
    store = InMemoryKeyStore(clock, grace=timedelta(minutes=5))
    with pytest.raises(SigningKeyError):
        await store.active_key()
    first = _key(clock)
    await store.add(first)
    await store.add(first)  # idempotent
    assert await store.active_key() == first
    clock.advance(timedelta(hours=1))
    second = _key(clock)
    await store.rotate(second)
    assert await store.active_key() == second
    retired = await store.get(first.kid)
    assert retired is not None
    assert retired.not_after == clock.now()  # stopped signing at the rotation
    assert {k.kid for k in await store.verification_keys()} == {first.kid, second.kid}
    clock.advance(timedelta(minutes=5, seconds=1))
    assert await store.get(first.kid) is None
    assert [k.kid for k in await store.verification_keys()] == [second.kid]


async def test_key_store_refuses_inconsistent_keys(clock: FrozenClock) -> None:
    store = InMemoryKeyStore(clock, grace=timedelta(minutes=5))
    key = _key(clock)
    await store.add(key)
    with pytest.raises(SigningKeyError, match="different key"):
        await store.add(dataclasses.replace(key, not_after=key.not_after + DAY))
    expired = key.retired(clock.now())
    with pytest.raises(SigningKeyError, match="cannot sign now"):
        await store.rotate(dataclasses.replace(expired, kid="other"))
