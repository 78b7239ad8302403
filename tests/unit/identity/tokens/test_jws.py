"""``sign_compact`` prepares a key's header once: the tokens must be joserfc's, byte for byte."""

from __future__ import annotations

import functools
import os
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from joserfc import jws as joserfc_jws
from joserfc.errors import UnsupportedHeaderError

from bastion.clock import FrozenClock
from bastion.identity.tokens import jws
from bastion.identity.tokens.errors import InvalidToken, SigningKeyError
from bastion.identity.tokens.jws import _registry, _signer, sign_compact, verify_compact
from bastion.identity.tokens.keys import SigningAlgorithm, SigningKey

PAYLOADS = (
    b'{"sub":"user-1"}',
    b"",
    "caf\u00e9 \u2603".encode(),
    b"\xfb\xff\xbf",  # "+//" and "/" in standard base64: "-__" and "_" here
    b"\xfb",  # two "=" of padding left off
    b"\xff\xfe",  # one "=" left off
)


def _key(algorithm: SigningAlgorithm = SigningAlgorithm.EDDSA) -> SigningKey:
    return SigningKey.generate(algorithm, clock=FrozenClock(), lifetime=timedelta(days=1))


def _joserfc(header: dict[str, str], payload: bytes, key: SigningKey) -> str:
    registry = _registry(key.algorithm)
    return joserfc_jws.serialize_compact(header, payload, key.key, registry=registry)


@pytest.mark.parametrize("payload", PAYLOADS)
def test_ed25519_tokens_are_joserfcs_byte_for_byte(payload: bytes) -> None:
    key = _key()
    header = {"alg": key.algorithm.value, "kid": key.kid, "typ": "at+jwt"}
    for _ in range(2):  # prepared, then from the prepared signer
        assert sign_compact(header, payload, key) == _joserfc(header, payload, key)


def test_headers_with_the_same_members_in_another_order_are_each_joserfcs() -> None:
    key = _key()
    first = {"alg": key.algorithm.value, "kid": key.kid, "typ": "at+jwt"}
    second = {"typ": "at+jwt", "kid": key.kid, "alg": key.algorithm.value}
    for header in (first, second, first):
        assert sign_compact(header, b"{}", key) == _joserfc(header, b"{}", key)


def test_es256_tokens_verify_and_share_joserfcs_header() -> None:
    key = _key(SigningAlgorithm.ES256)
    header = {"alg": key.algorithm.value, "kid": key.kid, "typ": "at+jwt"}
    for payload in PAYLOADS:
        token = sign_compact(header, payload, key)
        assert verify_compact(token, key) == payload
        assert token.split(".")[0] == _joserfc(header, payload, key).split(".")[0]


def test_a_new_key_object_under_the_same_kid_is_prepared_again() -> None:
    first, second = _key(), _key()
    header = {"alg": first.algorithm.value, "kid": first.kid, "typ": "at+jwt"}
    sign_compact(header, b"{}", first)
    impostor = SigningKey(
        first.kid, second.algorithm, second.created_at, second.not_after, second.key
    )
    token = sign_compact(header, b"{}", impostor)
    assert verify_compact(token, impostor) == b"{}"
    with pytest.raises(InvalidToken):
        verify_compact(token, first)


def test_the_header_is_checked_as_joserfc_checks_it() -> None:
    key = _key()
    header = {"alg": key.algorithm.value, "kid": key.kid, "cty": "x", "zzz": "unknown"}
    with pytest.raises(UnsupportedHeaderError):
        _joserfc(header, b"{}", key)
    with pytest.raises(UnsupportedHeaderError):
        sign_compact(header, b"{}", key)


def test_a_header_that_is_not_plain_strings_is_left_to_joserfc() -> None:
    key = _key()
    header = {"alg": key.algorithm.value, "kid": key.kid, "crit": ["exp"]}
    assert _signer(header, key) is None


def test_the_header_algorithm_must_be_the_keys() -> None:
    key = _key()
    with pytest.raises(SigningKeyError):
        sign_compact({"alg": "ES256", "kid": key.kid}, b"{}", key)


def test_an_ed25519_signer_signs_through_libsodium_and_es256_through_joserfc() -> None:
    ed25519, es256 = _key(), _key(SigningAlgorithm.ES256)
    for key in (ed25519, es256):
        header = {"alg": key.algorithm.value, "kid": key.kid, "typ": "at+jwt"}
        signer = _signer(header, key)
        assert signer is not None
        if key is ed25519:
            assert signer.sign.__module__ == jws.__name__  # libsodium's, checked
        else:
            assert isinstance(signer.sign, functools.partial)  # joserfc's algorithm


@pytest.mark.parametrize("length", [0, 1, 63, 64, 65, 300, 4096])
def test_libsodium_ed25519_signatures_are_pycas_byte_for_byte(length: int) -> None:
    """Ed25519 is deterministic: for every key and message, libsodium's signature must be
    the one pyca/cryptography (OpenSSL) computes, and verify under the public key."""
    for _ in range(8):
        native = Ed25519PrivateKey.generate()
        sign = jws._ed25519_signer(native)
        message = os.urandom(length)
        signature = sign(message)
        assert signature == native.sign(message)
        native.public_key().verify(signature, message)


def test_a_libsodium_that_disagrees_with_pyca_never_signs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    native = Ed25519PrivateKey.generate()
    other = Ed25519PrivateKey.generate().private_bytes_raw()
    real = jws.crypto_sign_seed_keypair
    # Another key's pair (as from a broken build): the self-check refuses it, pyca signs.
    monkeypatch.setattr(jws, "crypto_sign_seed_keypair", lambda _seed: real(other))
    assert jws._ed25519_signer(native) == native.sign
    public, _secret = real(native.private_bytes_raw())
    # The right public key but a wrong signature: refused too.
    monkeypatch.setattr(jws, "crypto_sign_seed_keypair", lambda _seed: (public, real(other)[1]))
    assert jws._ed25519_signer(native) == native.sign
