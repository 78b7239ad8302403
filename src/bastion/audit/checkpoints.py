"""Signed checkpoints: the chain head (seq, MAC, time) signed with Bastion's signing key.

A checkpoint is a JWS (RFC 7515 compact form, ``typ`` :data:`CHECKPOINT_TYPE`) over the JSON
payload ``{"iss", "seq", "mac", "iat"}``, signed by the active access-token signing key, so
anyone holding the published JWK Set can check it without any secret. An auditor who keeps an
exported checkpoint can later have ``bastion audit verify --checkpoint FILE --jwks JWKS`` prove
the trail up to ``seq`` is the one that existed when it was signed: rewriting any earlier event
changes the MAC at ``seq``, and only the signing key could sign a different one.

Stored checkpoints also carry a ``tag`` (an HMAC under the chain key, :func:`checkpoint_tag`):
that is what lets a purge anchor the chain at a checkpoint without trusting whatever public key
a row names.

Export file format (JSON, :data:`EXPORT_FORMAT`)::

    {"format": "bastion-audit-checkpoint/1", "checkpoint": "<JWS>",
     "jwks": {"keys": [<the signing key's public JWK>]}}

The embedded JWK is a convenience for matching the key up; a verifier trusts only a JWK Set it
obtained itself (``--jwks``), or, for the operator's own check, the keys in the database.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bastion.audit.errors import CheckpointInvalid
from bastion.identity.tokens.errors import TokenError
from bastion.identity.tokens.jws import read_header, sign_compact, strict_json, verify_compact
from bastion.identity.tokens.keys import PublicKey, SigningKey

__all__ = [
    "CHECKPOINT_TYPE",
    "EXPORT_FORMAT",
    "CheckpointClaims",
    "export_document",
    "parse_export",
    "sign_checkpoint",
    "verify_checkpoint",
]

CHECKPOINT_TYPE = "bastion-audit-checkpoint+jws"
EXPORT_FORMAT = "bastion-audit-checkpoint/1"
#: An export file is a few kilobytes; refuse anything far larger before parsing it.
MAX_EXPORT_BYTES = 64 * 1024
_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True, slots=True)
class CheckpointClaims:
    issuer: str
    seq: int
    mac: str
    issued_at: int

    def payload(self) -> bytes:
        body = {"iss": self.issuer, "seq": self.seq, "mac": self.mac, "iat": self.issued_at}
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def parse(cls, payload: Mapping[str, Any]) -> CheckpointClaims:
        iss, seq, mac, iat = (payload.get(k) for k in ("iss", "seq", "mac", "iat"))
        if set(payload) != {"iss", "seq", "mac", "iat"}:
            raise CheckpointInvalid("A checkpoint has exactly the members iss, seq, mac, iat.")
        if not isinstance(iss, str) or not isinstance(mac, str):
            raise CheckpointInvalid
        if not (isinstance(seq, int) and not isinstance(seq, bool) and seq >= 0):
            raise CheckpointInvalid
        if not (isinstance(iat, int) and not isinstance(iat, bool)):
            raise CheckpointInvalid
        if len(mac) != 64 or not set(mac) <= _HEX:
            raise CheckpointInvalid
        return cls(iss, seq, mac, iat)


def sign_checkpoint(
    key: SigningKey, *, issuer: str, seq: int, mac: str, at: datetime
) -> tuple[str, CheckpointClaims]:
    """The compact JWS of a checkpoint at ``seq`` (whose event has ``mac``), and its claims."""
    claims = CheckpointClaims(issuer, seq, mac, int(at.timestamp()))
    header = {"alg": key.algorithm.value, "kid": key.kid, "typ": CHECKPOINT_TYPE}
    return sign_compact(header, claims.payload(), key), claims


def verify_checkpoint(token: str, jwks: Mapping[str, Any]) -> CheckpointClaims:
    """Check ``token``'s signature against the key of its ``kid`` in ``jwks``; its claims.

    Raises :class:`CheckpointInvalid` for any defect (shape, type, unknown kid, signature,
    claims); the key decides the algorithm (no ``alg`` confusion).
    """
    try:
        header = read_header(token)
        if header.get("typ") != CHECKPOINT_TYPE:
            raise CheckpointInvalid("Not a Bastion audit checkpoint.")
        key = _key_for(str(header.get("kid", "")), jwks)
        if header.get("alg") != key.algorithm.value:
            raise CheckpointInvalid
        payload = strict_json(verify_compact(token, key))
    except TokenError:
        raise CheckpointInvalid from None
    if not isinstance(payload, dict):
        raise CheckpointInvalid
    return CheckpointClaims.parse(payload)


def _key_for(kid: str, jwks: Mapping[str, Any]) -> PublicKey:
    keys = jwks.get("keys")
    if not isinstance(keys, list):
        raise CheckpointInvalid("The JWK Set has no keys.")
    for jwk in keys:
        if isinstance(jwk, Mapping) and jwk.get("kid") == kid:
            try:
                return PublicKey.from_jwk(jwk)
            except TokenError:
                raise CheckpointInvalid from None
    raise CheckpointInvalid("No key in the JWK Set has the checkpoint's kid.")


def export_document(token: str, public_jwk: Mapping[str, Any]) -> dict[str, Any]:
    return {"format": EXPORT_FORMAT, "checkpoint": token, "jwks": {"keys": [dict(public_jwk)]}}


def parse_export(data: bytes) -> tuple[str, dict[str, Any]]:
    """The checkpoint token and the embedded JWK Set of an export file.

    Raises :class:`CheckpointInvalid` if it is not one.
    """
    if len(data) > MAX_EXPORT_BYTES:
        raise CheckpointInvalid("The checkpoint file is too large.")
    try:
        document = strict_json(data)
    except TokenError:
        raise CheckpointInvalid("The checkpoint file is not JSON.") from None
    if not isinstance(document, dict) or document.get("format") != EXPORT_FORMAT:
        raise CheckpointInvalid("Not a Bastion audit checkpoint file.")
    token, jwks = document.get("checkpoint"), document.get("jwks")
    if not isinstance(token, str) or not isinstance(jwks, dict):
        raise CheckpointInvalid("Not a Bastion audit checkpoint file.")
    return token, jwks
