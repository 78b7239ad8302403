"""A software WebAuthn authenticator (EC P-256, ES256) for tests without a browser.

It builds what a browser and an authenticator would return to ``navigator.credentials.create()``
(attestation ``none``) and ``navigator.credentials.get()``, in the JSON form of WebAuthn L3
(``RegistrationResponseJSON`` / ``AuthenticationResponseJSON``, base64url members), from the
options the server sent. Every field the server checks can be set wrong on purpose: origin,
RP id, challenge, sign count, flags, user handle, and the bytes after signing.

Formats: WebAuthn §6.1 (authenticator data), §6.5.4 (attestation object), §5.8.1 (client
data), RFC 9053 §7.1.1 (COSE EC2 keys). CBOR through the ``webauthn`` package's encoder.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import struct
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from webauthn.helpers import encode_cbor

FLAG_UP = 0x01
FLAG_UV = 0x04
FLAG_BE = 0x08
FLAG_BS = 0x10
FLAG_AT = 0x40
ES256 = -7


def stored_passkey(user_id: str, now: datetime) -> dict[str, Any]:
    """The row of a passkey of ``user_id`` as stored (``webauthn_credentials``), for tests that
    need an account to hold one and never use it (the key is no key)."""
    return {
        "id": f"pk-{user_id}"[:32],
        "user_id": user_id,
        "credential_id": user_id.encode(),
        "public_key": b"\x00",
        "sign_count": 0,
        "name": "key",
        "aaguid": "00000000-0000-0000-0000-000000000000",
        "transports": [],
        "backup_eligible": False,
        "backed_up": False,
        "created_at": now,
    }


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class SoftwareCredential:
    """One key pair held by the authenticator."""

    credential_id: bytes
    private_key: ec.EllipticCurvePrivateKey
    rp_id: str
    user_handle: bytes
    sign_count: int = 0

    def cose_public_key(self) -> bytes:
        numbers = self.private_key.public_key().public_numbers()
        return encode_cbor(
            {
                1: 2,  # kty: EC2
                3: ES256,  # alg
                -1: 1,  # crv: P-256
                -2: numbers.x.to_bytes(32, "big"),
                -3: numbers.y.to_bytes(32, "big"),
            }
        )


@dataclass
class SoftwareAuthenticator:
    """Answers registration and authentication options like a browser + authenticator would.

    ``origin`` is what the "browser" writes into clientDataJSON; ``user_verified`` sets the UV
    flag; ``backup_eligible`` makes synced (multi-device) passkeys; ``counter_step`` is added
    to a credential's sign count on each use (0: a counter-less authenticator).
    """

    origin: str
    user_verified: bool = True
    backup_eligible: bool = False
    counter_step: int = 1
    credentials: list[SoftwareCredential] = field(default_factory=list)

    # -- registration ------------------------------------------------------------------------
    def create(
        self,
        options: dict[str, Any],
        *,
        origin: str | None = None,
        rp_id: str | None = None,
        challenge: bytes | None = None,
        ctype: str = "webauthn.create",
        reuse: SoftwareCredential | None = None,
    ) -> dict[str, Any]:
        """The ``RegistrationResponseJSON`` for ``PublicKeyCredentialCreationOptionsJSON``;
        ``reuse`` attests an existing credential again (same id and key)."""
        rp = rp_id or options["rp"]["id"]
        credential = reuse or SoftwareCredential(
            credential_id=secrets.token_bytes(32),
            private_key=ec.generate_private_key(ec.SECP256R1()),
            rp_id=rp,
            user_handle=unb64url(options["user"]["id"]),
        )
        client_data = self._client_data(ctype, challenge or unb64url(options["challenge"]), origin)
        attested = (
            bytes(16)  # AAGUID: all zeros for attestation "none"
            + struct.pack(">H", len(credential.credential_id))
            + credential.credential_id
            + credential.cose_public_key()
        )
        auth_data = self._auth_data(rp, FLAG_AT, credential.sign_count) + attested
        attestation = encode_cbor({"fmt": "none", "attStmt": {}, "authData": auth_data})
        if reuse is None:
            self.credentials.append(credential)
        return {
            "id": b64url(credential.credential_id),
            "rawId": b64url(credential.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "attestationObject": b64url(attestation),
                "transports": ["internal"],
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        }

    # -- authentication ----------------------------------------------------------------------
    def get(
        self,
        options: dict[str, Any],
        *,
        credential: SoftwareCredential | None = None,
        origin: str | None = None,
        rp_id: str | None = None,
        challenge: bytes | None = None,
        sign_count: int | None = None,
        user_handle: bytes | bool = True,
        tamper_client_data: bool = False,
    ) -> dict[str, Any]:
        """The ``AuthenticationResponseJSON`` for ``PublicKeyCredentialRequestOptionsJSON``.

        ``credential`` defaults to the first one allowed by the options (or the newest one);
        ``sign_count`` forces the counter; ``user_handle=False`` omits it, bytes replace it;
        ``tamper_client_data`` changes clientDataJSON after signing (origin and challenge kept).
        """
        chosen = credential or self._choose(options)
        if sign_count is None:
            chosen.sign_count += self.counter_step
            sign_count = chosen.sign_count
        auth_data = self._auth_data(rp_id or chosen.rp_id, 0, sign_count)
        client_data = self._client_data(
            "webauthn.get", challenge or unb64url(options["challenge"]), origin
        )
        signature = chosen.private_key.sign(
            auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256())
        )
        if tamper_client_data:
            # Same origin and challenge, different bytes: only the signature can tell.
            client_data = client_data[:-1] + b',"extra":"x"}'
        response: dict[str, Any] = {
            "clientDataJSON": b64url(client_data),
            "authenticatorData": b64url(auth_data),
            "signature": b64url(signature),
        }
        if user_handle is True:
            response["userHandle"] = b64url(chosen.user_handle)
        elif isinstance(user_handle, bytes):
            response["userHandle"] = b64url(user_handle)
        return {
            "id": b64url(chosen.credential_id),
            "rawId": b64url(chosen.credential_id),
            "type": "public-key",
            "response": response,
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        }

    # -- parts -------------------------------------------------------------------------------
    def _choose(self, options: dict[str, Any]) -> SoftwareCredential:
        allowed = {unb64url(c["id"]) for c in options.get("allowCredentials") or ()}
        for credential in reversed(self.credentials):
            if not allowed or credential.credential_id in allowed:
                return credential
        raise LookupError("no credential of this authenticator is allowed")

    def _flags(self, extra: int) -> int:
        flags = FLAG_UP | extra
        if self.user_verified:
            flags |= FLAG_UV
        if self.backup_eligible:
            flags |= FLAG_BE | FLAG_BS
        return flags

    def _auth_data(self, rp_id: str, extra_flags: int, sign_count: int) -> bytes:
        rp_hash = hashlib.sha256(rp_id.encode("utf-8")).digest()
        return rp_hash + bytes([self._flags(extra_flags)]) + struct.pack(">I", sign_count)

    def _client_data(self, ctype: str, challenge: bytes, origin: str | None) -> bytes:
        return json.dumps(
            {
                "type": ctype,
                "challenge": b64url(challenge),
                "origin": origin or self.origin,
                "crossOrigin": False,
            },
            separators=(",", ":"),
        ).encode("utf-8")
