"""Access tokens: short-lived JWTs (RFC 9068 profile) signed with the active key.

Claims: ``iss aud sub exp iat nbf jti sid amr acr``; header: ``alg kid typ=at+jwt``. Every
claim is required on verification, every time claim is an integer NumericDate, and the clock
is injected (``leeway`` absorbs skew between servers).

Verification order, cheapest and least trusting first: shape and header (no key involved),
algorithm pinned to the configured one, ``typ``, ``kid`` known, then the signature, and only
then the claims, which are never looked at before the signature checks out.

With a :class:`~bastion.identity.tokens.sigcache.SignatureCache`, a token seen before whose
signature was checked by the very key the lookup returns now skips the signature check only;
every other check above runs on every use (see :mod:`bastion.identity.tokens.sigcache`).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from bastion.clock import Clock, SystemClock
from bastion.identity.tokens.claims import (
    ACCESS_TOKEN_TYPE,
    ACCESS_TOKEN_TYPES,
    AccessTokenClaims,
    AssuranceLevel,
    AuthMethod,
)
from bastion.identity.tokens.errors import InvalidToken, InvalidTokenReason, SigningKeyError
from bastion.identity.tokens.interfaces import KeyStore
from bastion.identity.tokens.jws import read_header, sign_compact, strict_json, verify_compact
from bastion.identity.tokens.keys import PublicKey, SigningKey
from bastion.identity.tokens.settings import AccessTokenSettings
from bastion.identity.tokens.sigcache import SignatureCache, token_digest

__all__ = [
    "JTI_BYTES",
    "REQUIRED_CLAIMS",
    "KeyLookup",
    "issue_access_token",
    "verify_access_token",
    "verify_access_token_with",
]

#: 128 random bits: unique token ids without coordination (replay lists, audit correlation).
JTI_BYTES = 16
REQUIRED_CLAIMS = ("iss", "aud", "sub", "exp", "iat", "nbf", "jti", "sid", "amr", "acr")
_MAX_ID_CHARS = 255
_SYSTEM_CLOCK = SystemClock()
Reason = InvalidTokenReason
_E = TypeVar("_E", AuthMethod, AssuranceLevel)
#: Finds the key that verifies tokens with this kid; None when there is none.
KeyLookup = Callable[[str], Awaitable[SigningKey | PublicKey | None]]
#: ``json.dumps(claims, separators=(",", ":"), ensure_ascii=False)``'s encoder, built once.
_CLAIMS_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
#: The string escaping that encoder applies (``ensure_ascii=False``).
_json_string: Callable[[str], str] = json.encoder.encode_basestring


async def issue_access_token(
    keys: KeyStore,
    settings: AccessTokenSettings,
    *,
    subject: str,
    session_id: str,
    amr: Sequence[AuthMethod],
    acr: AssuranceLevel,
    audience: str | None = None,
    ttl: timedelta | None = None,
    clock: Clock = _SYSTEM_CLOCK,
    key: SigningKey | None = None,
) -> str:
    """Sign an access token for ``subject`` in session ``session_id``.

    ``ttl`` defaults to (and may not exceed) ``settings.ttl_seconds``: the key store keeps
    retired keys only that long. ``key`` is the active key when the caller has just read it
    from ``keys`` (default: read here). Raises ``SigningKeyError`` without an active key of the
    configured algorithm.
    """
    for name, value in (("subject", subject), ("session_id", session_id)):
        if not isinstance(value, str) or not 0 < len(value) <= _MAX_ID_CHARS:
            raise ValueError(f"{name} must be a non-empty string of at most 255 characters")
    if not amr:
        raise ValueError("amr must name at least one authentication method (RFC 8176)")
    if ttl is None:  # the common case: settings.ttl, in whole seconds
        seconds = settings.ttl_seconds
        if seconds <= 0:
            raise ValueError("ttl must be positive and at most settings.ttl_seconds")
    elif timedelta(0) < ttl <= settings.ttl:
        seconds = int(ttl.total_seconds())
    else:
        raise ValueError("ttl must be positive and at most settings.ttl_seconds")
    if key is None:
        key = await keys.active_key()
    if key.algorithm is not settings.algorithm:
        raise SigningKeyError("The active signing key does not use the configured algorithm.")
    now = int(clock.now().timestamp())
    claims = {
        "iss": settings.issuer,
        "sub": subject,
        "aud": audience or settings.audience,
        "exp": now + seconds,
        "iat": now,
        "nbf": now,
        "jti": secrets.token_urlsafe(JTI_BYTES),
        "sid": session_id,
        "amr": [_METHOD_VALUES[m] if type(m) is AuthMethod else AuthMethod(m).value for m in amr],
        "acr": _LEVEL_VALUES[acr] if type(acr) is AssuranceLevel else AssuranceLevel(acr).value,
    }
    header = {"alg": key.algorithm.value, "kid": key.kid, "typ": ACCESS_TOKEN_TYPE}
    payload = claims_json(claims).encode("utf-8")
    return sign_compact(header, payload, key)


#: Each member's value without the enum's ``value`` property (other values: through the enum).
_METHOD_VALUES: dict[AuthMethod, str] = {m: m.value for m in AuthMethod}
_LEVEL_VALUES: dict[AssuranceLevel, str] = {a: a.value for a in AssuranceLevel}
_CLAIM_NAMES = ("iss", "sub", "aud", "exp", "iat", "nbf", "jti", "sid", "amr", "acr")


def claims_json(claims: dict[str, Any]) -> str:
    """``json.dumps(claims, separators=(",", ":"), ensure_ascii=False)``: for an access
    token's claims (these names in this order, exact ``str`` and ``int`` values, ``amr`` a
    list of ``str``) written directly with the encoder's own string escaping; anything else
    through the encoder."""
    if tuple(claims) == _CLAIM_NAMES:
        iss, sub, aud, exp, iat, nbf, jti, sid, amr, acr = claims.values()
        if (
            type(iss) is str
            and type(sub) is str
            and type(aud) is str
            and type(exp) is int
            and type(iat) is int
            and type(nbf) is int
            and type(jti) is str
            and type(sid) is str
            and type(amr) is list
            and type(acr) is str
            and all(type(m) is str for m in amr)
        ):
            s = _json_string
            return (
                f'{{"iss":{s(iss)},"sub":{s(sub)},"aud":{s(aud)},"exp":{exp},"iat":{iat},'
                f'"nbf":{nbf},"jti":{s(jti)},"sid":{s(sid)},"amr":[{",".join(map(s, amr))}],'
                f'"acr":{s(acr)}}}'
            )
    return _CLAIMS_ENCODER.encode(claims)


async def verify_access_token(
    token: str,
    keys: KeyStore,
    settings: AccessTokenSettings,
    *,
    audience: str | None = None,
    clock: Clock = _SYSTEM_CLOCK,
    cache: SignatureCache | None = None,
) -> AccessTokenClaims:
    """Return the claims of a valid access token for ``audience`` (default:
    ``settings.audience``).

    Raises :class:`InvalidToken` for every failure, with the same message; ``exc.reason`` says
    which check failed, for the audit log. ``cache`` remembers successful signature checks
    (see :mod:`bastion.identity.tokens.sigcache`).
    """
    return await verify_access_token_with(
        token, keys.get, settings, audience=audience, clock=clock, cache=cache
    )


async def verify_access_token_with(
    token: str,
    lookup: KeyLookup,
    settings: AccessTokenSettings,
    *,
    audience: str | None = None,
    clock: Clock = _SYSTEM_CLOCK,
    cache: SignatureCache | None = None,
) -> AccessTokenClaims:
    """:func:`verify_access_token` with keys found by ``lookup(kid)`` (a JWK Set cache on a
    resource server, see :mod:`bastion.sdk.auth`); ``None`` means an unknown kid."""
    header = read_header(token)
    if header.get("alg") != settings.algorithm.value:
        raise InvalidToken(Reason.ALGORITHM_NOT_ALLOWED)  # none, HS256, RS256, another curve
    if header.get("typ") not in ACCESS_TOKEN_TYPES:
        raise InvalidToken(Reason.WRONG_TYPE)  # an ID token or other JWT from the same key
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise InvalidToken(Reason.MISSING_KID)
    key = await lookup(kid)
    if key is None:
        raise InvalidToken(Reason.UNKNOWN_KID)
    if key.algorithm is not settings.algorithm:
        raise InvalidToken(Reason.ALGORITHM_NOT_ALLOWED)
    audience = audience or settings.audience
    now = int(clock.now().timestamp())
    if cache is None:
        return _check_claims(_verified_payload(token, key), kid, settings, audience, now)
    digest = token_digest(token)
    # A hit needs this token (every byte: the digest), this key object, before exp + leeway.
    cached = cache.get(digest, key.key, now)
    if cached is not None:
        return _check_claims(cached, kid, settings, audience, now)  # every claim test again
    claims = _verified_payload(token, key)
    verified = _check_claims(claims, kid, settings, audience, now)
    # Only now, signature and claims both good: failures are never remembered.
    cache.put(digest, key.key, claims, claims["exp"] + settings.leeway_seconds, now)
    return verified


def _verified_payload(token: str, key: SigningKey | PublicKey) -> dict[str, Any]:
    """The claims object of ``token`` once its signature checks out with ``key``."""
    claims = strict_json(verify_compact(token, key))
    if not isinstance(claims, dict):
        raise InvalidToken(Reason.MALFORMED)
    return claims


def _check_claims(
    claims: Mapping[str, Any],
    kid: str,
    settings: AccessTokenSettings,
    audience: str,
    now: int,
) -> AccessTokenClaims:
    if any(claims.get(name) is None for name in REQUIRED_CLAIMS):
        raise InvalidToken(Reason.MISSING_CLAIM)
    if claims["iss"] != settings.issuer:
        raise InvalidToken(Reason.WRONG_ISSUER)
    audiences = _audiences(claims["aud"])
    if audience not in audiences:
        raise InvalidToken(Reason.WRONG_AUDIENCE)
    exp, nbf, iat = (_numeric_date(claims[name]) for name in ("exp", "nbf", "iat"))
    leeway = settings.leeway_seconds
    if exp <= now - leeway:
        raise InvalidToken(Reason.EXPIRED)
    if nbf > now + leeway:
        raise InvalidToken(Reason.NOT_YET_VALID)
    if iat > now + leeway:
        raise InvalidToken(Reason.ISSUED_IN_FUTURE)
    subject, session_id, jti = (_identifier(claims[name]) for name in ("sub", "sid", "jti"))
    return AccessTokenClaims(
        issuer=settings.issuer,
        subject=subject,
        audience=audiences,
        session_id=session_id,
        jti=jti,
        issued_at=_datetime(iat),
        not_before=_datetime(nbf),
        expires_at=_datetime(exp),
        amr=_enum_list(AuthMethod, claims["amr"]),
        acr=_enum_value(AssuranceLevel, claims["acr"]),
        kid=kid,
    )


def _audiences(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise InvalidToken(Reason.INVALID_CLAIM)


def _numeric_date(value: object) -> int:
    # bool is an int subclass: `"exp": true` must not pass as 1 (1970).
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidToken(Reason.INVALID_CLAIM)
    return value


def _datetime(value: int) -> datetime:
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        raise InvalidToken(Reason.INVALID_CLAIM) from None


def _identifier(value: object) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= _MAX_ID_CHARS:
        raise InvalidToken(Reason.INVALID_CLAIM)
    return value


def _enum_value(kind: type[_E], value: object) -> _E:
    if not isinstance(value, str):
        raise InvalidToken(Reason.INVALID_CLAIM)
    try:
        return kind(value)
    except ValueError:
        raise InvalidToken(Reason.INVALID_CLAIM) from None


def _enum_list(kind: type[AuthMethod], value: object) -> tuple[AuthMethod, ...]:
    if not isinstance(value, list) or not value:
        raise InvalidToken(Reason.INVALID_CLAIM)
    return tuple(_enum_value(kind, item) for item in value)
