"""``sign_compact`` prepares a key's header once: the tokens must be joserfc's, byte for byte."""

from __future__ import annotations

from datetime import timedelta

import pytest
from joserfc import jws as joserfc_jws
from joserfc.errors import UnsupportedHeaderError

from bastion.clock import FrozenClock
from bastion.identity.tokens.errors import InvalidToken, SigningKeyError
from bastion.identity.tokens.jws import _registry, _signer, sign_compact, verify_compact
from bastion.identity.tokens.keys import SigningAlgorithm, SigningKey

PAYLOADS = (b'{"sub":"user-1"}', b"", "caf\u00e9 \u2603".encode())


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


def test_an_ed25519_signer_signs_with_the_native_key_and_es256_through_joserfc() -> None:
    ed25519, es256 = _key(), _key(SigningAlgorithm.ES256)
    for key in (ed25519, es256):
        header = {"alg": key.algorithm.value, "kid": key.kid, "typ": "at+jwt"}
        signer = _signer(header, key)
        assert signer is not None
        native = key.key.get_op_key("sign")
        assert getattr(signer.sign, "__self__", None) is (native if key is ed25519 else None)
