"""Published JWS examples through our signature layer: RFC 8037 A.3-A.5 (Ed25519), RFC 7515
A.3 (ES256), and the HS256 / RS256 / unsecured examples, which our verifier must refuse."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tests.unit.crypto.conformance import conformance_path

from bastion.identity.tokens import (
    AccessTokenService,
    InvalidToken,
    InvalidTokenReason,
    SigningAlgorithm,
    SigningKey,
)
from bastion.identity.tokens.jws import sign_compact, verify_compact

A_WHILE = datetime(2000, 1, 1, tzinfo=UTC)


def _vectors() -> dict[str, Any]:
    path = conformance_path("vectors", "rfc7515_rfc8037_examples.json")
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _examples() -> dict[str, dict[str, Any]]:
    return {example["name"]: example for example in _vectors()["examples"]}


def _key(example: dict[str, Any], algorithm: SigningAlgorithm) -> SigningKey:
    return SigningKey.from_private_jwk(
        example["jwk"],
        algorithm=algorithm,
        created_at=A_WHILE,
        not_after=A_WHILE + timedelta(days=36_500),
    )


def test_rfc8037_ed25519_sign_verify_and_thumbprint() -> None:
    example = _examples()["RFC8037-A.4/A.5"]
    key = _key(example, SigningAlgorithm.EDDSA)
    assert key.kid == example["jwk_thumbprint_sha256"]  # RFC 8037 A.3
    assert key.public_jwk()["x"] == example["jwk"]["x"]
    payload = example["payload_utf8"].encode()
    # Ed25519 is deterministic: our signing path must reproduce the RFC's token byte for byte.
    assert sign_compact({"alg": "EdDSA"}, payload, key) == example["compact"]
    assert verify_compact(example["compact"], key) == payload


def test_rfc8037_signature_does_not_verify_after_a_one_bit_change() -> None:
    example = _examples()["RFC8037-A.4/A.5"]
    key = _key(example, SigningAlgorithm.EDDSA)
    header, payload, signature = example["compact"].split(".")
    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    with pytest.raises(InvalidToken) as info:
        verify_compact(f"{header}.{payload}.{flipped}", key)
    assert info.value.reason is InvalidTokenReason.BAD_SIGNATURE


def test_rfc7515_es256_example_verifies() -> None:
    example = _examples()["RFC7515-A.3"]
    key = _key(example, SigningAlgorithm.ES256)
    payload = verify_compact(example["compact"], key)
    assert payload == _vectors()["payload_bytes_utf8"].encode()


def test_the_ed25519_key_cannot_verify_as_another_algorithm() -> None:
    example = _examples()["RFC8037-A.4/A.5"]
    ed25519_named = _key(example, SigningAlgorithm.ED25519)  # same key, RFC 9864 name
    with pytest.raises(InvalidToken) as info:
        verify_compact(example["compact"], ed25519_named)  # the header says "EdDSA"
    assert info.value.reason is InvalidTokenReason.ALGORITHM_NOT_ALLOWED


@pytest.mark.parametrize("name", ["RFC7515-A.1", "RFC7515-A.2", "RFC7515-A.3", "RFC8037-A.4/A.5"])
async def test_rfc_examples_are_not_access_tokens(service: AccessTokenService, name: str) -> None:
    # HS256 and RS256 are never accepted; the ES256 and EdDSA examples lack kid and typ.
    with pytest.raises(InvalidToken) as info:
        await service.verify(_examples()[name]["compact"])
    expected = {
        "RFC7515-A.1": InvalidTokenReason.ALGORITHM_NOT_ALLOWED,
        "RFC7515-A.2": InvalidTokenReason.ALGORITHM_NOT_ALLOWED,
        "RFC7515-A.3": InvalidTokenReason.ALGORITHM_NOT_ALLOWED,
        "RFC8037-A.4/A.5": InvalidTokenReason.WRONG_TYPE,
    }
    assert info.value.reason is expected[name]


async def test_rfc7515_a5_unsecured_jws_is_refused(service: AccessTokenService) -> None:
    unsecured = (
        "eyJhbGciOiJub25lIn0"
        ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ."
    )
    with pytest.raises(InvalidToken):
        await service.verify(unsecured)
    key = await service.keys.active_key()
    with pytest.raises(InvalidToken):
        verify_compact(unsecured, key)
