"""Imported legacy hashes: bcrypt, Django PBKDF2 and scrypt formats, always rehashed; the RFC
6070 and RFC 7914 vectors through our verifier; work-factor caps against hostile imports."""

from __future__ import annotations

import base64
import hashlib
import time

import bcrypt
import pytest
from tests.unit.crypto.conformance import conformance_path, parse_records

from bastion.identity.passwords import (
    Argon2Hasher,
    HashScheme,
    InvalidStoredHash,
    PasswordTooLong,
)
from bastion.identity.passwords.legacy import MAX_PBKDF2_ITERATIONS, MAX_SCRYPT_MEMORY_BYTES

PASSWORD = "correct horse battery staple"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unescape(value: str) -> bytes:
    # The pyca vector files write NUL as a literal "\0".
    return value.replace("\\0", "\0").encode()


def _django_pbkdf2(digest: str, password: bytes, salt: bytes, iterations: int, n: int) -> str:
    key = hashlib.pbkdf2_hmac(digest, password, salt, iterations, dklen=n)
    return f"pbkdf2_{digest}${iterations}${salt.decode()}${_b64(key)}"


@pytest.mark.parametrize("ident", [b"2b", b"2a", b"2y"])
def test_bcrypt_variants_verify_and_always_need_rehash(
    fast_hasher: Argon2Hasher, ident: bytes
) -> None:
    encoded = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4, prefix=b"2b"))
    encoded = b"$" + ident + encoded[3:]
    result = fast_hasher.verify(encoded.decode(), PASSWORD)
    assert (result.ok, result.needs_rehash, result.scheme) == (True, True, HashScheme.BCRYPT)
    assert not fast_hasher.verify(encoded.decode(), PASSWORD + "!").ok


def test_bcrypt_truncates_at_72_bytes_like_the_systems_that_made_the_hashes(
    fast_hasher: Argon2Hasher,
) -> None:
    long_password = "x" * 72 + "tail"
    encoded = bcrypt.hashpw(long_password.encode()[:72], bcrypt.gensalt(4)).decode()
    assert fast_hasher.verify(encoded, long_password).ok
    assert fast_hasher.verify(encoded, "x" * 72).ok  # why these hashes must be replaced
    assert fast_hasher.verify(encoded, "x" * 72).needs_rehash


def test_bcrypt_hostile_or_malformed(fast_hasher: Argon2Hasher) -> None:
    valid = bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode()
    for bad in [valid[:-1], valid.replace("$04$", "$17$"), valid.replace("$04$", "$31$"), "$2b$"]:
        with pytest.raises(InvalidStoredHash):
            fast_hasher.verify(bad, "pw")


def test_django_pbkdf2_sha256_format(fast_hasher: Argon2Hasher) -> None:
    encoded = _django_pbkdf2("sha256", PASSWORD.encode(), b"Zq3aVh8kT2", 1_000, 32)
    result = fast_hasher.verify(encoded, PASSWORD)
    assert (result.ok, result.needs_rehash, result.scheme) == (
        True,
        True,
        HashScheme.PBKDF2_SHA256,
    )
    assert not fast_hasher.verify(encoded, "Correct horse battery staple").ok


@pytest.mark.timing
def test_rfc6070_pbkdf2_sha1_vectors_through_the_django_sha1_format(
    fast_hasher: Argon2Hasher,
) -> None:
    cases = parse_records(conformance_path("vectors", "rfc-6070-PBKDF2-SHA1.txt"))
    assert len(cases) == 6
    for case in cases:
        password, salt = _unescape(case["PASSWORD"]), _unescape(case["SALT"])
        iterations = int(case["ITERATIONS"])
        key = bytes.fromhex(case["DERIVED_KEY"])
        assert len(key) == int(case["LENGTH"])
        encoded = f"pbkdf2_sha1${iterations}${salt.decode()}${_b64(key)}"
        if iterations > MAX_PBKDF2_ITERATIONS:
            # 16,777,216 iterations: seconds of CPU per login attempt. Refused, not computed.
            start = time.perf_counter()
            with pytest.raises(InvalidStoredHash):
                fast_hasher.verify(encoded, password.decode())
            assert time.perf_counter() - start < 0.5
            continue
        result = fast_hasher.verify(encoded, password.decode())
        assert (result.ok, result.needs_rehash) == (True, True), case["COUNT"]
        assert not fast_hasher.verify(encoded, password.decode() + "x").ok


def test_scrypt_vectors_through_the_django_scrypt_format(fast_hasher: Argon2Hasher) -> None:
    cases = parse_records(conformance_path("vectors", "scrypt.txt"))
    assert len(cases) == 4
    for case in cases:
        n, r, p = int(case["N"]), int(case["r"]), int(case["p"])
        key = bytes.fromhex(case["DERIVED_KEY"])
        encoded = f"scrypt${case['SALT']}${n}${r}${p}${_b64(key)}"
        if 128 * r * (n + p) > MAX_SCRYPT_MEMORY_BYTES:
            # N = 2**20, r = 8: 1 GiB per verification. Refused, not computed.
            with pytest.raises(InvalidStoredHash):
                fast_hasher.verify(encoded, case["PASSWORD"])
            continue
        result = fast_hasher.verify(encoded, case["PASSWORD"])
        assert (result.ok, result.needs_rehash, result.scheme) == (True, True, HashScheme.SCRYPT)
        assert not fast_hasher.verify(encoded, case["PASSWORD"] + "x").ok


def test_legacy_hashes_use_the_password_bytes_as_typed(fast_hasher: Argon2Hasher) -> None:
    decomposed = "cafe\u0301 au lait!"
    encoded = _django_pbkdf2("sha256", decomposed.encode(), b"salt", 10, 32)
    assert fast_hasher.verify(encoded, decomposed).ok
    assert not fast_hasher.verify(encoded, "caf\u00e9 au lait!").ok


@pytest.mark.parametrize(
    "bad",
    [
        "pbkdf2_sha256$1000$salt",  # missing part
        "pbkdf2_sha256$1000$salt$key$extra",
        "pbkdf2_sha256$abc$salt$" + "A" * 44,
        "pbkdf2_sha256$-5$salt$" + "A" * 44,
        "pbkdf2_sha256$0$salt$" + "A" * 44,
        "pbkdf2_sha256$\u0661\u0660\u0660\u0660$salt$" + "A" * 44,  # Arabic-Indic digits
        "pbkdf2_sha256$1000$salt$not*base64",
        "pbkdf2_sha256$1000$salt$" + _b64(b"short"),
        "pbkdf2_sha256$1000$salt$" + _b64(bytes(65)),
        "scrypt$salt$1000$8$1$" + _b64(bytes(64)),  # N not a power of two
        "scrypt$salt$1$8$1$" + _b64(bytes(64)),
        "scrypt$salt$16384$0$1$" + _b64(bytes(64)),
        "scrypt$salt$16384$8$1",
    ],
)
def test_malformed_legacy_hashes_raise(fast_hasher: Argon2Hasher, bad: str) -> None:
    with pytest.raises(InvalidStoredHash):
        fast_hasher.verify(bad, PASSWORD)


def test_byte_cap_applies_to_legacy_verification(fast_hasher: Argon2Hasher) -> None:
    encoded = _django_pbkdf2("sha256", b"x", b"salt", 10, 32)
    with pytest.raises(PasswordTooLong):
        fast_hasher.verify(encoded, "x" * 1025)
