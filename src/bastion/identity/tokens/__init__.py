"""Access tokens: short-lived asymmetric JWTs (RFC 9068 profile), key rotation, JWK Set.

::

    keys = InMemoryKeyStore.from_settings(settings.access_tokens, clock)
    tokens = AccessTokenService(settings.access_tokens, keys, clock)
    await tokens.ensure_active_key()
    token = await tokens.issue(subject=user_id, session_id=sid, amr=[AuthMethod.PASSWORD],
                               acr=AssuranceLevel.AAL1)
    claims = await tokens.verify(token)          # raises InvalidToken (opaque; see .reason)
"""

from bastion.identity.tokens.access import issue_access_token, verify_access_token
from bastion.identity.tokens.audits import audit_token_settings
from bastion.identity.tokens.claims import AccessTokenClaims, AssuranceLevel, AuthMethod
from bastion.identity.tokens.errors import (
    InvalidToken,
    InvalidTokenReason,
    KeySetUnavailable,
    SigningKeyError,
    TokenError,
)
from bastion.identity.tokens.interfaces import KeyStore
from bastion.identity.tokens.keys import (
    PublicKey,
    SealedSigningKey,
    SigningAlgorithm,
    SigningKey,
    jwks,
    seal,
    unseal,
)
from bastion.identity.tokens.keystore import InMemoryKeyStore
from bastion.identity.tokens.services import AccessTokenService
from bastion.identity.tokens.settings import AccessTokenSettings

__all__ = [
    "AccessTokenClaims",
    "AccessTokenService",
    "AccessTokenSettings",
    "AssuranceLevel",
    "AuthMethod",
    "InMemoryKeyStore",
    "InvalidToken",
    "InvalidTokenReason",
    "KeySetUnavailable",
    "KeyStore",
    "PublicKey",
    "SealedSigningKey",
    "SigningAlgorithm",
    "SigningKey",
    "SigningKeyError",
    "TokenError",
    "audit_token_settings",
    "issue_access_token",
    "jwks",
    "seal",
    "unseal",
    "verify_access_token",
]
