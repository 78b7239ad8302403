"""Known-answer tests of the raw primitives: RFC 5869 (HKDF-SHA256), NIST CAVP (AES-256-GCM)."""

from __future__ import annotations

import pytest
from cryptography.exceptions import InvalidTag
from tests.unit.crypto.conformance import conformance_path, parse_records

from bastion.crypto.hazmat import aes256_gcm_decrypt, aes256_gcm_encrypt, hkdf_sha256


def _hkdf_cases() -> list[dict[str, str]]:
    return parse_records(conformance_path("vectors", "rfc-5869-HKDF-SHA256.txt"))


def test_hkdf_sha256_rfc5869_vectors() -> None:
    cases = _hkdf_cases()
    assert len(cases) == 3
    for case in cases:
        assert case["Hash"] == "SHA-256"
        okm = hkdf_sha256(
            bytes.fromhex(case["IKM"]),
            # RFC 5869 A.3: "salt = (empty)" means not provided, i.e. HashLen zero bytes.
            salt=bytes.fromhex(case["salt"]) or None,
            info=bytes.fromhex(case["info"]),
            length=int(case["L"]),
        )
        assert okm.hex() == case["OKM"], case["COUNT"]


def test_hkdf_refuses_lengths_outside_rfc_bounds() -> None:
    with pytest.raises(ValueError, match=r"1\.\.8160"):
        hkdf_sha256(b"k" * 32, salt=None, info=b"", length=255 * 32 + 1)
    with pytest.raises(ValueError, match=r"1\.\.8160"):
        hkdf_sha256(b"k" * 32, salt=None, info=b"", length=0)


def _gcm(name: str) -> list[dict[str, str]]:
    cases = parse_records(conformance_path("vectors", name))
    assert cases
    for case in cases:
        assert case["Keylen"] == "256"
        assert case["IVlen"] == "96"
        assert case["Taglen"] == "128"
    return cases


def test_aes256_gcm_nist_encrypt_vectors() -> None:
    for case in _gcm("gcmEncryptExtIV256.IV96-Tag128.excerpt.rsp"):
        out = aes256_gcm_encrypt(
            bytes.fromhex(case["Key"]),
            bytes.fromhex(case["IV"]),
            bytes.fromhex(case["PT"]),
            bytes.fromhex(case["AAD"]),
        )
        assert out.hex() == case["CT"] + case["Tag"]


def test_aes256_gcm_nist_decrypt_vectors_including_forgeries() -> None:
    cases = _gcm("gcmDecrypt256.IV96-Tag128.excerpt.rsp")
    assert any("FAIL" in case for case in cases), "the excerpt must include forged cases"
    for case in cases:
        args = (
            bytes.fromhex(case["Key"]),
            bytes.fromhex(case["IV"]),
            bytes.fromhex(case["CT"] + case["Tag"]),
            bytes.fromhex(case["AAD"]),
        )
        if "FAIL" in case:
            with pytest.raises(InvalidTag):
                aes256_gcm_decrypt(*args)
        else:
            assert aes256_gcm_decrypt(*args).hex() == case["PT"]


def test_aes_gcm_refuses_128_bit_keys_and_odd_nonces() -> None:
    with pytest.raises(ValueError, match="32-byte key"):
        aes256_gcm_encrypt(bytes(16), bytes(12), b"", b"")
    with pytest.raises(ValueError, match="12-byte nonce"):
        aes256_gcm_encrypt(bytes(32), bytes(16), b"", b"")


def test_aes_gcm_ciphers_kept_per_key_answer_as_fresh_ones() -> None:
    """The AESGCM objects kept per key (built once) seal and open exactly as fresh ones, refuse
    forgeries the same way, and are bounded; a mutable key is never kept."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: PLC0415

    from bastion.crypto.hazmat import aead  # noqa: PLC0415

    nonce, aad = bytes(range(12)), b"bound"
    for index in range(aead._CIPHERS_MAX + 3):
        key = index.to_bytes(32, "big")
        for _ in range(2):  # the second call meets the kept cipher
            sealed = aes256_gcm_encrypt(key, nonce, b"secret", aad)
            assert sealed == AESGCM(key).encrypt(nonce, b"secret", aad)
            assert aes256_gcm_decrypt(key, nonce, sealed, aad) == b"secret"
            with pytest.raises(InvalidTag):
                aes256_gcm_decrypt(key, nonce, sealed, b"elsewhere")
            with pytest.raises(InvalidTag):  # another key's cipher is never used
                aes256_gcm_decrypt(b"\xff" * 32, nonce, sealed, aad)
        assert len(aead._CIPHERS) <= aead._CIPHERS_MAX
    mutable = bytearray(b"m" * 32)
    sealed = aes256_gcm_encrypt(mutable, nonce, b"x", aad)  # type: ignore[arg-type]
    assert all(kept is not mutable for kept in aead._CIPHERS)
    mutable[0] ^= 1
    with pytest.raises(InvalidTag):  # the changed key is a different key
        aes256_gcm_decrypt(mutable, nonce, sealed, aad)  # type: ignore[arg-type]
    # A kept key still refuses an odd nonce.
    with pytest.raises(ValueError, match="12-byte nonce"):
        aes256_gcm_encrypt(bytes(32), bytes(16), b"", b"")
