"""TOTP against RFC 6238 appendix B, drift window, code shapes, QR and URI."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime

import pytest
from tests.unit.crypto.conformance import conformance_path, parse_records

from bastion.identity.mfa import totp

DIGESTS = {"SHA1": hashlib.sha1, "SHA256": hashlib.sha256, "SHA512": hashlib.sha512}


def test_rfc6238_appendix_b() -> None:
    """All 18 vectors: T0 = 0, X = 30 s, 8 digits, SHA-1/256/512 with their seeds."""
    vectors = parse_records(conformance_path("vectors", "rfc-6238.txt"))
    assert len(vectors) == 18
    for vector in vectors:
        secret = base64.b32encode(vector["SECRET"].encode("ascii")).decode()
        step = int(vector["TIME"]) // totp.STEP_SECONDS
        code = totp.code_at(secret, step, digits=8, digest=DIGESTS[vector["MODE"]])
        assert code == vector["TOTP"], vector


NOW = datetime(2026, 1, 1, 12, 0, 10, tzinfo=UTC)


def test_one_step_of_drift_either_side_and_no_more() -> None:
    secret = totp.new_secret()
    current = totp.time_step(NOW)
    for offset in (-1, 0, 1):
        code = totp.code_at(secret, current + offset)
        assert totp.matching_step(secret, code, NOW) == current + offset
    for offset in (-3, -2, 2, 3):
        code = totp.code_at(secret, current + offset)
        if code not in {totp.code_at(secret, current + o) for o in (-1, 0, 1)}:
            assert totp.matching_step(secret, code, NOW) is None


@pytest.mark.parametrize("code", ["", "12345", "1234567", "12a456", "١٢٣٤٥٦", "x" * 100])
def test_malformed_codes_never_match(code: str) -> None:
    assert totp.matching_step(totp.new_secret(), code, NOW) is None


def test_spaces_are_tolerated() -> None:
    secret = totp.new_secret()
    code = totp.code_at(secret, totp.time_step(NOW))
    assert totp.matching_step(secret, f" {code[:3]} {code[3:]} ", NOW) == totp.time_step(NOW)


def test_secrets_are_160_bits_and_fresh() -> None:
    secrets = {totp.new_secret() for _ in range(100)}
    assert len(secrets) == 100
    assert all(len(s) == 32 for s in secrets)


def test_uri_and_qr() -> None:
    secret = totp.new_secret()
    uri = totp.provisioning_uri(secret, account="ann@example.com", issuer="Bastion")
    assert uri.startswith("otpauth://totp/Bastion:ann%40example.com?")
    assert f"secret={secret}" in uri
    assert "issuer=Bastion" in uri
    svg = totp.qr_svg(uri)
    assert svg.startswith("<svg")
    assert svg.rstrip().endswith("</svg>")
    assert secret not in svg  # the secret is in the modules, not in text
