"""Argon2id hashing: defaults, rehash detection, normalisation, byte cap, safety caps, vectors."""

from __future__ import annotations

import base64
import re
import statistics
import time

import argon2
import pytest
from argon2.low_level import Type, hash_secret, hash_secret_raw
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from tests.unit.crypto.conformance import conformance_path, parse_records

from bastion.identity.passwords import (
    MAX_PASSWORD_BYTES,
    Argon2Hasher,
    HashScheme,
    InvalidStoredHash,
    PasswordSettings,
    PasswordTooLong,
    identify,
)

PASSWORD = "correct horse battery staple"


def _full_width(ascii_text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) for c in ascii_text)


def test_default_parameters_write_owasp_argon2id() -> None:
    hasher = Argon2Hasher(PasswordSettings())
    encoded = hasher.hash(PASSWORD)
    assert encoded.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    params = argon2.extract_parameters(encoded)
    assert (params.salt_len, params.hash_len) == (16, 32)
    result = hasher.verify(encoded, PASSWORD)
    assert (result.ok, result.needs_rehash, result.scheme) == (True, False, HashScheme.ARGON2ID)


def test_salts_are_random(fast_hasher: Argon2Hasher) -> None:
    assert fast_hasher.hash(PASSWORD) != fast_hasher.hash(PASSWORD)


def test_wrong_password_is_a_result_not_an_exception(fast_hasher: Argon2Hasher) -> None:
    result = fast_hasher.verify(fast_hasher.hash(PASSWORD), PASSWORD + "!")
    assert not result.ok
    assert not result.needs_rehash


def test_rehash_when_parameters_change(fast_hasher: Argon2Hasher) -> None:
    old = fast_hasher.hash(PASSWORD)
    stronger = Argon2Hasher(
        PasswordSettings(hash_memory_kib=128, hash_time_cost=1, allow_insecure_hash_parameters=True)
    )
    result = stronger.verify(old, PASSWORD)
    assert result.ok
    assert result.needs_rehash
    assert not stronger.verify(stronger.hash(PASSWORD), PASSWORD).needs_rehash


def test_rehash_when_the_argon2_variant_differs(fast_hasher: Argon2Hasher) -> None:
    argon2i = hash_secret(PASSWORD.encode(), b"s" * 16, 1, 64, 1, 32, Type.I).decode()
    result = fast_hasher.verify(argon2i, PASSWORD)
    assert (result.ok, result.needs_rehash, result.scheme) == (True, True, HashScheme.ARGON2I)


def test_nfkc_normalisation(fast_hasher: Argon2Hasher) -> None:
    # Same password typed two ways: composed vs decomposed accent, full-width vs ASCII.
    assert fast_hasher.verify(fast_hasher.hash("caf\u00e9 au lait!"), "cafe\u0301 au lait!").ok
    assert fast_hasher.verify(fast_hasher.hash(_full_width("pass123")), "pass123").ok


def test_byte_cap_is_enforced_before_hashing(fast_hasher: Argon2Hasher) -> None:
    at_cap = "a" * MAX_PASSWORD_BYTES
    assert fast_hasher.verify(fast_hasher.hash(at_cap), at_cap).ok
    encoded = fast_hasher.hash(PASSWORD)
    over = [
        "a" * (MAX_PASSWORD_BYTES + 1),
        "é" * (MAX_PASSWORD_BYTES // 2 + 1),  # 2 bytes each in UTF-8
        "\ufdfa" * 40,  # 120 bytes as typed, 1,320 after NFKC: the cap applies after NFKC
        "a" * 10_000_000,  # refused before normalisation even starts
    ]
    for password in over:
        with pytest.raises(PasswordTooLong):
            fast_hasher.hash(password)
        with pytest.raises(PasswordTooLong):
            fast_hasher.verify(encoded, password)
        with pytest.raises(PasswordTooLong):
            fast_hasher.dummy_verify(password)


def test_lone_surrogates_do_not_crash(fast_hasher: Argon2Hasher) -> None:
    weird = "abc\ud800def"
    assert fast_hasher.verify(fast_hasher.hash(weird), weird).ok
    assert not fast_hasher.verify(fast_hasher.hash(weird), "abc\ufffddef").ok


def test_unknown_and_malformed_hashes_raise(fast_hasher: Argon2Hasher) -> None:
    for bad in ["", "plaintext", "md5$abc$def", "$argon2id$v=19$garbage", "$argon2id$"]:
        with pytest.raises(InvalidStoredHash):
            fast_hasher.verify(bad, PASSWORD)
    with pytest.raises(InvalidStoredHash):
        identify(None)  # type: ignore[arg-type]


@pytest.mark.timing
def test_hostile_argon2_parameters_are_refused_without_computing(
    fast_hasher: Argon2Hasher,
) -> None:
    # A tampered row asking for 4 GiB must not be computed.
    hostile = (
        "$argon2id$v=19$m=4194304,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc"
    )
    start = time.perf_counter()
    with pytest.raises(InvalidStoredHash):
        fast_hasher.verify(hostile, PASSWORD)
    assert time.perf_counter() - start < 0.5
    with pytest.raises(InvalidStoredHash):
        fast_hasher.verify(hostile.replace("t=2", "t=1000").replace("4194304", "64"), PASSWORD)


@pytest.mark.timing
def test_dummy_verify_costs_a_real_verification() -> None:
    # Threat: user enumeration by timing. The dummy must do the same Argon2 work as a real
    # verification; measured at the real default parameters, interleaved so background load
    # hits both alike, with a generous margin.
    hasher = Argon2Hasher(PasswordSettings())
    encoded = hasher.hash(PASSWORD)
    real, dummy = [], []
    for _ in range(7):
        start = time.perf_counter()
        hasher.verify(encoded, "wrong password")
        real.append(time.perf_counter() - start)
        start = time.perf_counter()
        hasher.dummy_verify("wrong password")
        dummy.append(time.perf_counter() - start)
    assert 0.5 < statistics.median(dummy) / statistics.median(real) < 2.0


# -- conformance vectors ------------------------------------------------------------------


def test_argon2id_known_answers_rfc9106_and_reference() -> None:
    cases = parse_records(conformance_path("vectors", "argon2id.txt"))
    assert cases
    for case in cases:
        expected = case["output"]
        secret, ad = case.get("secret", ""), case.get("ad", "")
        if secret or ad:
            # argon2-cffi cannot pass K and X; RFC 9106 §5.3 needs them: use cryptography.
            kdf = Argon2id(
                salt=bytes.fromhex(case["salt"]),
                length=int(case["length"]),
                iterations=int(case["iter"]),
                lanes=int(case["lanes"]),
                memory_cost=int(case["memcost"]),
                ad=bytes.fromhex(ad) or None,
                secret=bytes.fromhex(secret) or None,
            )
            assert kdf.derive(bytes.fromhex(case["pass"])).hex() == expected
            continue
        raw = hash_secret_raw(
            secret=bytes.fromhex(case["pass"]),
            salt=bytes.fromhex(case["salt"]),
            time_cost=int(case["iter"]),
            memory_cost=int(case["memcost"]),
            parallelism=int(case["lanes"]),
            hash_len=int(case["length"]),
            type=Type.ID,
        )
        assert raw.hex() == expected, case["COUNT"]


_PHC_ROW = re.compile(
    r"^\| (\d+) \| (\d+) \| (\d+) \| (\w+) \| (\w+) \| ([0-9a-f]{64}) \| `(\$argon2id\$[^`]+)` \|$"
)


def test_phc_reference_strings_verify_through_our_verifier(fast_hasher: Argon2Hasher) -> None:
    # The PHC reference test.c table (vectors README §5): our verify() path must accept these
    # encoded hashes (and flag them for rehash: their parameters are not ours).
    text = conformance_path("vectors", "README.md").read_text(encoding="utf-8")
    rows = [m.groups() for m in map(_PHC_ROW.match, text.splitlines()) if m]
    assert len(rows) >= 6
    checked = 0
    for t, m, _p, password, salt, hex_out, encoded in rows:
        if int(m) > 65_536 or int(t) > 2:
            continue  # 256 MiB / four-pass rows: correct but slow
        assert base64.b64decode(encoded.rsplit("$", 1)[1] + "=").hex() == hex_out
        assert f"$m={m},t={t}," in encoded
        assert salt in {"somesalt", "diffsalt"}
        result = fast_hasher.verify(encoded, password)
        assert (result.ok, result.needs_rehash) == (True, True), encoded
        assert not fast_hasher.verify(encoded, password + "x").ok
        checked += 1
    assert checked >= 5


def test_fast_fixture_is_really_below_owasp(fast_settings: PasswordSettings) -> None:
    assert not fast_settings.hash_parameters_meet_owasp
