"""Purpose-bound subkeys: independent per purpose, pinned labels, rotation, no secret in repr."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import SecretStr

from bastion.crypto import KeyPurpose, Keyring, KeyringError, derive_key, derive_key_id
from bastion.crypto.keyring import SALT

ROOT = "a-long-random-root-secret-key-0123456789-abcdefghijkl"
OLD_ROOT = "the-previous-root-secret-key-0123456789-abcdefghijkl"


def test_derivation_is_hkdf_sha256_with_pinned_labels() -> None:
    # The label is part of the key: renaming a purpose would silently change every key.
    for purpose in KeyPurpose:
        expected = HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=b"bastion-keyring",
            info=f"bastion/v1/{purpose.value}".encode(),
        ).derive(ROOT.encode())
        assert derive_key(SecretStr(ROOT), purpose) == expected
    assert SALT == b"bastion-keyring"


def test_purposes_get_independent_keys() -> None:
    keys = {derive_key(SecretStr(ROOT), purpose) for purpose in KeyPurpose}
    assert len(keys) == len(KeyPurpose)


def test_secretstr_and_bytes_roots_agree_and_lengths_apply() -> None:
    a = derive_key(SecretStr(ROOT), KeyPurpose.CSRF)
    assert a == derive_key(ROOT.encode(), KeyPurpose.CSRF)
    assert len(derive_key(ROOT.encode(), KeyPurpose.CSRF, length=64)) == 64
    # A shorter output is a prefix of the same HKDF stream, so lengths must be fixed per use.
    assert derive_key(ROOT.encode(), KeyPurpose.CSRF, length=16) == a[:16]
    for bad in (8, 65):
        with pytest.raises(ValueError, match=r"16\.\.64"):
            derive_key(ROOT.encode(), KeyPurpose.CSRF, length=bad)


def test_short_or_empty_root_is_refused() -> None:
    for root in (b"", b"short", SecretStr("fifteen-bytes!!")):
        with pytest.raises(KeyringError):
            derive_key(root, KeyPurpose.CSRF)
    with pytest.raises(KeyringError):
        Keyring(SecretStr(ROOT), previous=[b"too-short"])


def test_key_id_is_stable_public_and_unrelated_to_the_key() -> None:
    kid = derive_key_id(SecretStr(ROOT), KeyPurpose.SECRETS_AT_REST)
    assert len(kid) == 4
    assert kid == derive_key_id(ROOT.encode(), KeyPurpose.SECRETS_AT_REST)
    assert kid not in derive_key(SecretStr(ROOT), KeyPurpose.SECRETS_AT_REST)
    assert kid != derive_key_id(SecretStr(ROOT), KeyPurpose.CSRF)


def test_keyring_versions_current_first_then_previous() -> None:
    ring = Keyring(SecretStr(ROOT), previous=[SecretStr(OLD_ROOT)])
    current, old = ring.versions(KeyPurpose.SECRETS_AT_REST)
    assert current.key == ring.derive(KeyPurpose.SECRETS_AT_REST)
    assert old.key == derive_key(SecretStr(OLD_ROOT), KeyPurpose.SECRETS_AT_REST)
    assert current.key_id != old.key_id


def test_the_same_root_twice_is_refused() -> None:
    ring = Keyring(SecretStr(ROOT), previous=[ROOT.encode()])
    with pytest.raises(KeyringError, match="same key id"):
        ring.versions(KeyPurpose.SECRETS_AT_REST)


def test_no_secret_in_repr() -> None:
    ring = Keyring(SecretStr(ROOT), previous=[SecretStr(OLD_ROOT)])
    derived = ring.versions(KeyPurpose.CSRF)[0]
    for text in (repr(ring), str(ring), repr(derived)):
        assert ROOT not in text
        assert derived.key.hex() not in text
        assert repr(derived.key) not in text
