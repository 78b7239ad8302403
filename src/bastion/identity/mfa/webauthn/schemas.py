"""Request and response bodies of the passkey API.

Credentials travel as the JSON forms of WebAuthn Level 3 (``RegistrationResponseJSON``,
``AuthenticationResponseJSON``: binary members base64url-encoded, what Chromium's
``credential.toJSON()`` produces). Every member is bounded and typed; unknown members are
refused, except in ``clientExtensionResults`` (whose content the server ignores).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from bastion.identity.fields import DisplayName, OpaqueToken
from bastion.identity.mfa.webauthn.credentials import Passkey
from bastion.identity.mfa.webauthn.models import CREDENTIAL_NAME_CHARS

__all__ = [
    "AssertionIn",
    "CeremonyOut",
    "LoginFinishIn",
    "PasskeyOut",
    "PasskeysOut",
    "RegistrationFinishIn",
    "RenameIn",
    "SecondFactorBeginIn",
    "SecondFactorFinishIn",
    "StepUpFinishIn",
]


_B64URL = r"^[A-Za-z0-9_-]*={0,2}$"
#: base64url of a credential id (at most 1023 bytes).
CredentialId = Annotated[str, Field(min_length=1, max_length=1366, pattern=_B64URL)]
ClientData = Annotated[str, Field(min_length=1, max_length=8192, pattern=_B64URL)]
#: Attestation objects with certificate chains run to a few KiB.
AttestationObject = Annotated[str, Field(min_length=1, max_length=65_536, pattern=_B64URL)]
AuthenticatorData = Annotated[str, Field(min_length=1, max_length=8192, pattern=_B64URL)]
PublicKey = Annotated[str, Field(min_length=1, max_length=4096, pattern=_B64URL)]
Signature = Annotated[str, Field(min_length=1, max_length=2048, pattern=_B64URL)]
#: A user handle is at most 64 bytes.
UserHandle = Annotated[str, Field(max_length=88, pattern=_B64URL)]
PasskeyName = Annotated[DisplayName, Field(max_length=CREDENTIAL_NAME_CHARS)]
Transport = Literal["bearer", "cookie"]


class _Strict(BaseModel):
    # Mass assignment: a member the model does not list is refused (422), never ignored.
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class _Credential(_Strict):
    id: CredentialId
    raw_id: CredentialId = Field(alias="rawId")
    type: Literal["public-key"]
    authenticator_attachment: Literal["platform", "cross-platform"] | None = Field(
        default=None, alias="authenticatorAttachment"
    )
    client_extension_results: dict[str, Any] = Field(
        default_factory=dict, alias="clientExtensionResults", max_length=16
    )


class _AttestationResponse(_Strict):
    client_data_json: ClientData = Field(alias="clientDataJSON")
    attestation_object: AttestationObject = Field(alias="attestationObject")
    transports: list[Annotated[str, Field(max_length=32)]] | None = Field(
        default=None, max_length=8
    )
    # Members of toJSON() that the server recomputes from the attestation object.
    authenticator_data: AuthenticatorData | None = Field(default=None, alias="authenticatorData")
    public_key: PublicKey | None = Field(default=None, alias="publicKey")
    public_key_algorithm: int | None = Field(default=None, alias="publicKeyAlgorithm")


class RegistrationCredentialIn(_Credential):
    response: _AttestationResponse


class _AssertionResponse(_Strict):
    client_data_json: ClientData = Field(alias="clientDataJSON")
    authenticator_data: AuthenticatorData = Field(alias="authenticatorData")
    signature: Signature
    user_handle: UserHandle | None = Field(default=None, alias="userHandle")


class AssertionIn(_Credential):
    response: _AssertionResponse


def as_json(credential: _Credential) -> dict[str, Any]:
    """The credential in its WebAuthn JSON form, for the ``webauthn`` package."""
    return credential.model_dump(by_alias=True, exclude_none=True)


# -- requests --------------------------------------------------------------------------------
class RegistrationFinishIn(_Strict):
    ceremony: OpaqueToken
    credential: RegistrationCredentialIn
    name: PasskeyName | None = None


class RenameIn(_Strict):
    name: PasskeyName


class LoginFinishIn(_Strict):
    ceremony: OpaqueToken
    credential: AssertionIn
    transport: Transport = "bearer"


class SecondFactorBeginIn(_Strict):
    challenge_token: OpaqueToken


class SecondFactorFinishIn(_Strict):
    challenge_token: OpaqueToken
    ceremony: OpaqueToken
    credential: AssertionIn


class StepUpFinishIn(_Strict):
    ceremony: OpaqueToken
    credential: AssertionIn


# -- responses -------------------------------------------------------------------------------
class CeremonyOut(BaseModel):
    """Pass ``publicKey`` to ``navigator.credentials.create()`` / ``.get()`` (base64url members
    decoded, e.g. with ``PublicKeyCredential.parseCreationOptionsFromJSON``), then finish with
    ``ceremony`` and the credential's JSON within ``expires_in`` seconds."""

    model_config = ConfigDict(populate_by_name=True)

    ceremony: str
    expires_in: int
    public_key: dict[str, Any] = Field(alias="publicKey")


class PasskeyOut(BaseModel):
    id: str
    name: str
    created_at: datetime
    last_used_at: datetime | None
    #: "hwk": bound to one device; "swk": a synced (multi-device) passkey.
    kind: Literal["hwk", "swk"]
    backed_up: bool
    transports: list[str]

    @classmethod
    def of(cls, passkey: Passkey) -> PasskeyOut:
        return cls(
            id=passkey.id,
            name=passkey.name,
            created_at=passkey.created_at,
            last_used_at=passkey.last_used_at,
            kind="swk" if passkey.backup_eligible else "hwk",
            backed_up=passkey.backed_up,
            transports=list(passkey.transports),
        )


class PasskeysOut(BaseModel):
    passkeys: list[PasskeyOut]
