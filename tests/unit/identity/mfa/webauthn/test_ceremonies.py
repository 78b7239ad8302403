"""The relying party over the ``webauthn`` package, without storage: options, and hostile bytes.

Whatever a client puts in a response, verification ends in the ceremony's own rejection (a
4xx for the HTTP layer), never in another exception (a 500).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.common.passkeys import SoftwareAuthenticator, b64url

from bastion.identity.mfa.webauthn.ceremonies import RelyingParty, parse_assertion
from bastion.identity.mfa.webauthn.errors import AssertionRejected, RegistrationRejected
from bastion.identity.mfa.webauthn.settings import WebAuthnSettings, origin_of

ORIGIN = "https://id.example.com"
RP = RelyingParty(rp_id="example.com", rp_name="Example", origins=[ORIGIN], timeout_ms=60_000)
CHALLENGE = bytes(range(32))
USER = b"0b5c1f62-4c1e-4c56-9d43-3f0e8a1d2c11"


def registration_options() -> dict[str, Any]:
    return RP.registration_options(
        challenge=CHALLENGE,
        user_handle=USER,
        user_name="ann@example.org",
        display_name="Ann",
        exclude=[],
    )


def test_options_name_our_rp_and_prefer_user_verification() -> None:
    options = registration_options()
    assert options["rp"] == {"name": "Example", "id": "example.com"}
    assert options["challenge"] == b64url(CHALLENGE)
    assert options["user"]["id"] == b64url(USER)
    assert options["authenticatorSelection"]["residentKey"] == "preferred"
    assert options["authenticatorSelection"]["userVerification"] == "preferred"
    assert options["attestation"] == "none"
    assert {p["alg"] for p in options["pubKeyCredParams"]} >= {-7, -8}
    request = RP.authentication_options(
        challenge=CHALLENGE, allow=[b"id"], user_verification="preferred"
    )
    assert request["rpId"] == "example.com"
    assert request["allowCredentials"] == [{"type": "public-key", "id": b64url(b"id")}]


def test_a_subdomain_origin_verifies_under_a_parent_rp_id() -> None:
    device = SoftwareAuthenticator(origin=ORIGIN)
    new, user_verified = RP.verify_registration(
        device.create(registration_options()), challenge=CHALLENGE
    )
    assert user_verified
    assert new.credential_id == device.credentials[0].credential_id


def verify(response: dict[str, Any], public_key: bytes) -> None:
    RP.verify_assertion(parse_assertion(response), challenge=CHALLENGE, public_key=public_key)


binary = st.binary(max_size=200).map(b64url)
hostile_text = st.one_of(binary, st.text(max_size=50), st.just(""))


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    field=st.sampled_from(["clientDataJSON", "authenticatorData", "signature"]),
    value=hostile_text,
)
def test_any_assertion_bytes_are_a_clean_rejection(field: str, value: str) -> None:
    device = SoftwareAuthenticator(origin=ORIGIN)
    new, _ = RP.verify_registration(device.create(registration_options()), challenge=CHALLENGE)
    request = RP.authentication_options(challenge=CHALLENGE, allow=[], user_verification="required")
    response = device.get(request)
    response["response"][field] = value
    with pytest.raises(AssertionRejected):
        verify(response, new.public_key)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(field=st.sampled_from(["clientDataJSON", "attestationObject"]), value=hostile_text)
def test_any_attestation_bytes_are_a_clean_rejection(field: str, value: str) -> None:
    response = SoftwareAuthenticator(origin=ORIGIN).create(registration_options())
    response["response"][field] = value
    with pytest.raises(RegistrationRejected):
        RP.verify_registration(response, challenge=CHALLENGE)


@pytest.mark.parametrize(
    ("given_origins", "error"),
    [
        (["https://id.example.com/path"], "bare origin"),
        (["id.example.com"], "http"),
        (["ftp://id.example.com"], "http"),
    ],
)
def test_origins_must_be_bare(given_origins: list[str], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        WebAuthnSettings(origins=given_origins)


def test_settings_default_from_the_public_url() -> None:
    webauthn = WebAuthnSettings()
    assert webauthn.effective_rp_id("https://ID.example.com:8443/x") == "id.example.com"
    assert webauthn.effective_origins("https://ID.example.com:8443/x", 8000) == (
        "https://id.example.com:8443",
    )
    assert webauthn.effective_rp_id(None) == "localhost"
    assert webauthn.effective_origins(None, 8123) == ("http://localhost:8123",)
    explicit = WebAuthnSettings(
        rp_id="Example.com", origins="https://a.example.com, https://b.example.com/"
    )
    assert explicit.effective_rp_id("https://other.org") == "example.com"
    assert explicit.effective_origins(None, 1) == ("https://a.example.com", "https://b.example.com")
    assert origin_of("https://example.com:443") == "https://example.com"
    with pytest.raises(ValueError, match="host name"):
        WebAuthnSettings(rp_id="https://example.com")
