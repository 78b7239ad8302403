"""Secrets at rest: the format, binding to their row, tamper evidence, rotation, opacity."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from bastion.crypto import (
    DecryptionFailed,
    DecryptionFailure,
    EnvelopeCipher,
    KeyPurpose,
    Keyring,
    KeyringError,
    bind,
    derive_key_id,
)
from bastion.crypto.envelope import MAX_PLAINTEXT_BYTES

ROOT = SecretStr("a-long-random-root-secret-key-0123456789-abcdefghijkl")
OLD_ROOT = SecretStr("the-previous-root-secret-key-0123456789-abcdefghijkl")
ROW_1 = bind("signing_keys", "private_key", "row-1")
ROW_2 = bind("signing_keys", "private_key", "row-2")
SECRET = b"-----BEGIN PRIVATE KEY----- not really"


@pytest.fixture
def cipher() -> EnvelopeCipher:
    return EnvelopeCipher.from_keyring(Keyring(ROOT))


def _raw(envelope: str) -> bytes:
    return base64.urlsafe_b64decode(envelope + "=" * (-len(envelope) % 4))


def _text(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _failure(cipher: EnvelopeCipher, envelope: str, aad: bytes = ROW_1) -> DecryptionFailed:
    with pytest.raises(DecryptionFailed) as info:
        cipher.decrypt(envelope, associated_data=aad)
    return info.value


def test_round_trip_and_wire_format(cipher: EnvelopeCipher) -> None:
    envelope = cipher.encrypt(SECRET, associated_data=ROW_1)
    assert cipher.decrypt(envelope, associated_data=ROW_1) == SECRET
    raw = _raw(envelope)
    assert raw[0] == 1  # version
    assert raw[1:5] == derive_key_id(ROOT, KeyPurpose.SECRETS_AT_REST)
    assert len(raw) == 1 + 4 + 12 + len(SECRET) + 16
    assert SECRET not in raw
    assert "=" not in envelope


def test_ciphertext_moved_to_another_row_fails(cipher: EnvelopeCipher) -> None:
    # Threat: an attacker with write access to one column copies a victim's encrypted secret
    # into their own row, hoping the application decrypts it for them.
    envelope = cipher.encrypt(SECRET, associated_data=ROW_1)
    assert _failure(cipher, envelope, ROW_2).reason is DecryptionFailure.AUTHENTICATION_FAILED


def test_every_byte_is_authenticated(cipher: EnvelopeCipher) -> None:
    raw = _raw(cipher.encrypt(SECRET, associated_data=ROW_1))
    for i in range(5, len(raw)):  # header bytes are covered by version/key-id lookups below
        tampered = bytearray(raw)
        tampered[i] ^= 0x01
        reason = _failure(cipher, _text(bytes(tampered))).reason
        assert reason is DecryptionFailure.AUTHENTICATION_FAILED, i


def test_truncation_and_garbage_are_refused(cipher: EnvelopeCipher) -> None:
    envelope = cipher.encrypt(SECRET, associated_data=ROW_1)
    raw = _raw(envelope)
    assert _failure(cipher, _text(raw[:-1])).reason is DecryptionFailure.AUTHENTICATION_FAILED
    assert _failure(cipher, _text(raw[:20])).reason is DecryptionFailure.MALFORMED
    for garbage in ("", "not base64!", envelope + "=", "A"):
        assert _failure(cipher, garbage).reason is DecryptionFailure.MALFORMED
    assert _failure(cipher, "A" * 200_000).reason is DecryptionFailure.TOO_LARGE
    assert _failure(cipher, b"bytes" * 10).reason is DecryptionFailure.MALFORMED  # type: ignore[arg-type]


def test_header_changes_are_refused(cipher: EnvelopeCipher) -> None:
    raw = bytearray(_raw(cipher.encrypt(SECRET, associated_data=ROW_1)))
    raw[0] = 2
    assert _failure(cipher, _text(bytes(raw))).reason is DecryptionFailure.UNSUPPORTED_VERSION
    raw[0] = 1
    raw[1] ^= 0xFF
    assert _failure(cipher, _text(bytes(raw))).reason is DecryptionFailure.UNKNOWN_KEY


def test_failures_are_opaque(cipher: EnvelopeCipher) -> None:
    envelope = cipher.encrypt(SECRET, associated_data=ROW_1)
    errors = [_failure(cipher, envelope, ROW_2), _failure(cipher, "A"), _failure(cipher, "")]
    assert len({(str(e), e.code, e.status) for e in errors}) == 1
    assert {e.reason for e in errors} == {
        DecryptionFailure.AUTHENTICATION_FAILED,
        DecryptionFailure.MALFORMED,
    }
    assert errors[0].__suppress_context__


def test_nonces_are_never_reused(cipher: EnvelopeCipher) -> None:
    envelopes = [cipher.encrypt(SECRET, associated_data=ROW_1) for _ in range(2000)]
    nonces = {_raw(e)[5:17] for e in envelopes}
    assert len(nonces) == len(envelopes)


def test_rotation_old_key_decrypts_and_rotate_moves_to_current() -> None:
    old_cipher = EnvelopeCipher.from_keyring(Keyring(OLD_ROOT))
    old_envelope = old_cipher.encrypt(SECRET, associated_data=ROW_1)

    rotated_ring = EnvelopeCipher.from_keyring(Keyring(ROOT, previous=[OLD_ROOT]))
    assert rotated_ring.decrypt(old_envelope, associated_data=ROW_1) == SECRET
    assert rotated_ring.needs_rotation(old_envelope)

    fresh = rotated_ring.rotate(old_envelope, associated_data=ROW_1)
    assert not rotated_ring.needs_rotation(fresh)
    assert _raw(fresh)[1:5] == derive_key_id(ROOT, KeyPurpose.SECRETS_AT_REST)
    # Once the old root is dropped, only re-encrypted rows still open.
    current_only = EnvelopeCipher.from_keyring(Keyring(ROOT))
    assert current_only.decrypt(fresh, associated_data=ROW_1) == SECRET
    assert _failure(current_only, old_envelope).reason is DecryptionFailure.UNKNOWN_KEY


def test_purposes_do_not_share_keys() -> None:
    ring = Keyring(ROOT)
    envelope = EnvelopeCipher.from_keyring(ring).encrypt(SECRET, associated_data=ROW_1)
    other = EnvelopeCipher.from_keyring(ring, KeyPurpose.CSRF)
    assert _failure(other, envelope).reason is DecryptionFailure.UNKNOWN_KEY


def test_misuse_is_refused(cipher: EnvelopeCipher) -> None:
    with pytest.raises(ValueError, match="associated_data"):
        cipher.encrypt(SECRET, associated_data=b"")
    with pytest.raises(ValueError, match="at most"):
        cipher.encrypt(bytes(MAX_PLAINTEXT_BYTES + 1), associated_data=ROW_1)
    with pytest.raises(KeyringError):
        EnvelopeCipher([])
    with pytest.raises(ValueError, match="at least one part"):
        bind()


def test_bind_is_unambiguous() -> None:
    assert bind("a|b", "c") != bind("a", "b|c")
    assert bind("ab", "") != bind("a", "b")
    assert bind("é") == b"\x00\x00\x00\x02\xc3\xa9"


def test_no_key_material_in_repr(cipher: EnvelopeCipher) -> None:
    key = Keyring(ROOT).derive(KeyPurpose.SECRETS_AT_REST)
    assert key.hex() not in repr(cipher)
    assert repr(key) not in repr(cipher)


@settings(max_examples=50, deadline=None)
@given(plaintext=st.binary(max_size=2048), row=st.text(max_size=40))
def test_round_trip_property(plaintext: bytes, row: str) -> None:
    cipher = EnvelopeCipher.from_keyring(Keyring(ROOT))
    aad = bind("t", row)
    assert cipher.decrypt(cipher.encrypt(plaintext, associated_data=aad), associated_data=aad) == (
        plaintext
    )
