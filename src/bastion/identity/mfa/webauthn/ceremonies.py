"""The two WebAuthn ceremonies over the ``webauthn`` package (py_webauthn 3.x), without storage.

Options are built for our relying party (RP id, name, allowed origins from the settings), with
user verification *preferred* and attestation ``none``; responses are verified by the package
against one expected challenge, the RP id and the exact allowed origins. Every failure raises
:class:`~bastion.identity.mfa.webauthn.errors.RegistrationRejected` or
:class:`~bastion.identity.mfa.webauthn.errors.AssertionRejected` with the precise reason for
the audit trail.

The sign count is *not* checked here (the package's check runs before the signature is
verified, so a forged response would pass for a cloned authenticator): the caller compares it
once the signature is known good.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidSignature
from cryptography.exceptions import UnsupportedAlgorithm as CryptoUnsupportedAlgorithm

from bastion.identity.mfa.webauthn.credentials import NewCredential
from bastion.identity.mfa.webauthn.errors import (
    AssertionRejected,
    FailureReason,
    RegistrationRejected,
    WebAuthnError,
)

if TYPE_CHECKING:
    from webauthn.helpers.structs import AuthenticationCredential

# The ``webauthn`` package (with its CBOR and ASN.1 dependencies, ~6 MiB per worker) is
# imported by the first ceremony, not at start-up: most workers never see a passkey.

__all__ = ["RelyingParty", "VerifiedAssertion", "parse_assertion"]


@functools.cache
def _verify_errors() -> tuple[type[BaseException], ...]:
    """Whatever a hostile response makes the package (or its CBOR and crypto dependencies)
    raise."""
    from webauthn.helpers.exceptions import WebAuthnException  # noqa: PLC0415 - see above

    return (
        WebAuthnException,
        InvalidSignature,
        CryptoUnsupportedAlgorithm,
        ValueError,
        TypeError,
        KeyError,
        IndexError,
        OverflowError,
    )


#: Package messages -> audit reasons. Only the audit reason depends on them: any other message
#: is still a rejection (``verification_failed``).
_REASONS = (
    ("origin", FailureReason.ORIGIN),
    ("RP ID", FailureReason.RP_ID),
    ("challenge", FailureReason.CHALLENGE),
    ("signature", FailureReason.SIGNATURE),
    ("malformed", FailureReason.MALFORMED),
    ("parse", FailureReason.MALFORMED),
)


def _reason(exc: BaseException) -> FailureReason:
    from webauthn.helpers.exceptions import WebAuthnException  # noqa: PLC0415 - see above

    if isinstance(exc, InvalidSignature):
        return FailureReason.SIGNATURE
    message = str(exc)
    for needle, reason in _REASONS:
        if needle in message:
            return reason
    if isinstance(exc, WebAuthnException):
        return FailureReason.VERIFICATION
    return FailureReason.MALFORMED


@dataclass(frozen=True, slots=True)
class VerifiedAssertion:
    credential_id: bytes
    new_sign_count: int
    user_verified: bool


def parse_assertion(credential: Mapping[str, Any]) -> AuthenticationCredential:
    """The parsed ``navigator.credentials.get()`` response; raises AssertionRejected."""
    from webauthn.helpers import parse_authentication_credential_json  # noqa: PLC0415

    try:
        return parse_authentication_credential_json(dict(credential))
    except _verify_errors() as exc:
        raise AssertionRejected(FailureReason.MALFORMED) from exc


class RelyingParty:
    """Builds options for, and verifies responses to, our relying party."""

    def __init__(
        self, *, rp_id: str, rp_name: str, origins: Sequence[str], timeout_ms: int
    ) -> None:
        if not origins:
            raise ValueError("at least one allowed origin is required")
        self.rp_id = rp_id
        self.rp_name = rp_name
        self.origins = list(origins)
        self.timeout_ms = timeout_ms

    # -- registration ------------------------------------------------------------------------
    def registration_options(
        self,
        *,
        challenge: bytes,
        user_handle: bytes,
        user_name: str,
        display_name: str,
        exclude: Sequence[bytes],
    ) -> dict[str, Any]:
        """``PublicKeyCredentialCreationOptionsJSON`` (base64url members)."""
        from webauthn import generate_registration_options, options_to_json  # noqa: PLC0415
        from webauthn.helpers.structs import (  # noqa: PLC0415
            AttestationConveyancePreference,
            AuthenticatorSelectionCriteria,
            PublicKeyCredentialDescriptor,
            ResidentKeyRequirement,
            UserVerificationRequirement,
        )

        options = generate_registration_options(
            rp_id=self.rp_id,
            rp_name=self.rp_name,
            user_name=user_name,
            user_id=user_handle,
            user_display_name=display_name,
            challenge=challenge,
            timeout=self.timeout_ms,
            attestation=AttestationConveyancePreference.NONE,
            authenticator_selection=AuthenticatorSelectionCriteria(
                # A discoverable credential can also log in without a username (passkey).
                resident_key=ResidentKeyRequirement.PREFERRED,
                user_verification=UserVerificationRequirement.PREFERRED,
            ),
            # The browser refuses to register an authenticator the account already has.
            exclude_credentials=[PublicKeyCredentialDescriptor(id=cid) for cid in exclude],
        )
        return dict(json.loads(options_to_json(options)))

    def verify_registration(
        self, credential: Mapping[str, Any], *, challenge: bytes
    ) -> tuple[NewCredential, bool]:
        """The new credential and whether the user was verified; raises RegistrationRejected."""
        from webauthn import verify_registration_response  # noqa: PLC0415
        from webauthn.helpers import bytes_to_base64url  # noqa: PLC0415
        from webauthn.helpers.structs import CredentialDeviceType  # noqa: PLC0415

        try:
            verified = verify_registration_response(
                credential=dict(credential),
                expected_challenge=challenge,
                expected_rp_id=self.rp_id,
                expected_origin=self.origins,
                require_user_presence=True,
                require_user_verification=False,
            )
        except _verify_errors() as exc:
            raise RegistrationRejected(_reason(exc)) from exc
        if credential.get("rawId") != bytes_to_base64url(verified.credential_id):
            # The id the client names must be the one the authenticator attested.
            raise RegistrationRejected(FailureReason.MALFORMED)
        transports = (credential.get("response") or {}).get("transports") or []
        new = NewCredential(
            credential_id=verified.credential_id,
            public_key=verified.credential_public_key,
            sign_count=verified.sign_count,
            aaguid=verified.aaguid,
            transports=tuple(str(t) for t in transports if isinstance(t, str))[:8],
            # WebAuthn §6.1.3: a backup-eligible credential is a multi-device (synced) one.
            backup_eligible=verified.credential_device_type == CredentialDeviceType.MULTI_DEVICE,
            backed_up=verified.credential_backed_up,
        )
        return new, verified.user_verified

    # -- authentication ----------------------------------------------------------------------
    def authentication_options(
        self, *, challenge: bytes, allow: Sequence[bytes], user_verification: str
    ) -> dict[str, Any]:
        """``PublicKeyCredentialRequestOptionsJSON``; empty ``allow``: discoverable credentials."""
        from webauthn import generate_authentication_options, options_to_json  # noqa: PLC0415
        from webauthn.helpers.structs import (  # noqa: PLC0415
            PublicKeyCredentialDescriptor,
            UserVerificationRequirement,
        )

        options = generate_authentication_options(
            rp_id=self.rp_id,
            challenge=challenge,
            timeout=self.timeout_ms,
            allow_credentials=[PublicKeyCredentialDescriptor(id=cid) for cid in allow],
            user_verification=UserVerificationRequirement(user_verification),
        )
        return dict(json.loads(options_to_json(options)))

    def verify_assertion(
        self, credential: AuthenticationCredential, *, challenge: bytes, public_key: bytes
    ) -> VerifiedAssertion:
        """Checks type, challenge, origin, RP id, user presence and the signature. Raises
        AssertionRejected."""
        from webauthn import verify_authentication_response  # noqa: PLC0415

        try:
            verified = verify_authentication_response(
                credential=credential,
                expected_challenge=challenge,
                expected_rp_id=self.rp_id,
                expected_origin=self.origins,
                credential_public_key=public_key,
                # 0 disables the package's counter check, which runs before the signature
                # check; the caller compares counters once the signature is verified.
                credential_current_sign_count=0,
                require_user_verification=False,
            )
        except _verify_errors() as exc:
            raise AssertionRejected(_reason(exc)) from exc
        return VerifiedAssertion(
            verified.credential_id, verified.new_sign_count, verified.user_verified
        )


def rejected(exc: WebAuthnError) -> FailureReason:
    """The audit reason of a ceremony error."""
    return exc.reason or FailureReason.VERIFICATION
