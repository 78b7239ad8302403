"""Every attack on the verifier is refused, with one opaque error; ``reason`` tells them apart.

Each case would be accepted by a verifier missing the control it names.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import serialization

from bastion.clock import FrozenClock
from bastion.identity.tokens import (
    AccessTokenService,
    AssuranceLevel,
    AuthMethod,
    InvalidToken,
    InvalidTokenReason,
    SigningAlgorithm,
    SigningKey,
)
from tests.unit.identity.tokens.forge import claims, ed25519, encode, hs256, unb64

R = InvalidTokenReason
Attack = Callable[[AccessTokenService, SigningKey, FrozenClock, str], Awaitable[str] | str]


def _header(key: SigningKey, **overrides: object) -> dict[str, object]:
    header: dict[str, object] = {"alg": "EdDSA", "kid": key.kid, "typ": "at+jwt"}
    header.update(overrides)
    return {k: v for k, v in header.items() if v is not None}


def _attacker_key(clock: FrozenClock) -> SigningKey:
    return SigningKey.generate(clock=clock, lifetime=timedelta(days=1))


def _public_pem(key: SigningKey) -> bytes:
    return key.key.public_key.public_bytes(  # type: ignore[union-attr]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _tamper_payload(token: str) -> str:
    header, payload, signature = token.split(".")
    body = json.loads(unb64(payload))
    body["sub"] = "admin"
    return f"{header}.{encode(body)}.{signature}"


ATTACKS: dict[str, tuple[R, Callable[..., str]]] = {
    "alg none": (  # RFC 7515 A.5 shape: empty signature, refused before the header is trusted
        R.MALFORMED,
        lambda s, k, c, t: f"{encode(_header(k, alg='none'))}.{encode(claims(s.settings, c))}.",
    ),
    "alg none with a dummy signature": (
        R.ALGORITHM_NOT_ALLOWED,
        lambda s, k, c, t: f"{encode(_header(k, alg='none'))}.{encode(claims(s.settings, c))}.AA",
    ),
    "alg None (case variant)": (
        R.ALGORITHM_NOT_ALLOWED,
        lambda s, k, c, t: ed25519(k, _header(k, alg="None"), claims(s.settings, c)),
    ),
    "HS256 keyed with the public key PEM": (
        R.ALGORITHM_NOT_ALLOWED,
        lambda s, k, c, t: hs256(_public_pem(k), _header(k, alg="HS256"), claims(s.settings, c)),
    ),
    "HS256 keyed with the raw public key": (
        R.ALGORITHM_NOT_ALLOWED,
        lambda s, k, c, t: hs256(
            unb64(k.public_jwk()["x"]), _header(k, alg="HS256"), claims(s.settings, c)
        ),
    ),
    "HS256 keyed with the public JWK JSON": (
        R.ALGORITHM_NOT_ALLOWED,
        lambda s, k, c, t: hs256(
            json.dumps(k.public_jwk()).encode(), _header(k, alg="HS256"), claims(s.settings, c)
        ),
    ),
    "RS256 claimed": (
        R.ALGORITHM_NOT_ALLOWED,
        lambda s, k, c, t: ed25519(k, _header(k, alg="RS256"), claims(s.settings, c)),
    ),
    "ES256 claimed": (
        R.ALGORITHM_NOT_ALLOWED,
        lambda s, k, c, t: ed25519(k, _header(k, alg="ES256"), claims(s.settings, c)),
    ),
    "alg missing": (
        R.ALGORITHM_NOT_ALLOWED,
        lambda s, k, c, t: ed25519(k, _header(k, alg=None), claims(s.settings, c)),
    ),
    "expired": (
        R.EXPIRED,
        lambda s, k, c, t: ed25519(k, _header(k), claims(s.settings, c, exp=_now(c) - 31)),
    ),
    "not yet valid": (
        R.NOT_YET_VALID,
        lambda s, k, c, t: ed25519(k, _header(k), claims(s.settings, c, nbf=_now(c) + 31)),
    ),
    "issued in the future": (
        R.ISSUED_IN_FUTURE,
        lambda s, k, c, t: ed25519(k, _header(k), claims(s.settings, c, iat=_now(c) + 31)),
    ),
    "wrong audience": (
        R.WRONG_AUDIENCE,
        lambda s, k, c, t: ed25519(k, _header(k), claims(s.settings, c, aud="https://other")),
    ),
    "wrong audience in a list": (
        R.WRONG_AUDIENCE,
        lambda s, k, c, t: ed25519(k, _header(k), claims(s.settings, c, aud=["a", "b"])),
    ),
    "wrong issuer": (
        R.WRONG_ISSUER,
        lambda s, k, c, t: ed25519(k, _header(k), claims(s.settings, c, iss="https://evil")),
    ),
    "unknown kid": (
        R.UNKNOWN_KID,
        lambda s, k, c, t: ed25519(
            _attacker_key(c), _header(_attacker_key(c)), claims(s.settings, c)
        ),
    ),
    "our kid, attacker's signature": (
        R.BAD_SIGNATURE,
        lambda s, k, c, t: ed25519(_attacker_key(c), _header(k), claims(s.settings, c)),
    ),
    "missing kid": (
        R.MISSING_KID,
        lambda s, k, c, t: ed25519(k, _header(k, kid=None), claims(s.settings, c)),
    ),
    "kid not a string": (
        R.MISSING_KID,
        lambda s, k, c, t: ed25519(k, _header(k, kid=7), claims(s.settings, c)),
    ),
    "tampered payload": (R.BAD_SIGNATURE, lambda s, k, c, t: _tamper_payload(t)),
    "stripped signature": (R.MALFORMED, lambda s, k, c, t: t.rsplit(".", 1)[0] + "."),
    "signature removed entirely": (R.MALFORMED, lambda s, k, c, t: t.rsplit(".", 1)[0]),
    "truncated signature": (R.BAD_SIGNATURE, lambda s, k, c, t: t[:-4]),
    "embedded jwk header": (
        R.FORBIDDEN_HEADER,
        lambda s, k, c, t: ed25519(
            _attacker_key(c),
            _header(k, jwk=_attacker_key(c).public_jwk()),
            claims(s.settings, c),
        ),
    ),
    "jku header": (
        R.FORBIDDEN_HEADER,
        lambda s, k, c, t: ed25519(
            k, _header(k, jku="https://evil.example/jwks.json"), claims(s.settings, c)
        ),
    ),
    "x5u header": (
        R.FORBIDDEN_HEADER,
        lambda s, k, c, t: ed25519(k, _header(k, x5u="https://evil.example/c"), claims(s.settings, c)),
    ),
    "x5c header": (
        R.FORBIDDEN_HEADER,
        lambda s, k, c, t: ed25519(k, _header(k, x5c=["MIIB"]), claims(s.settings, c)),
    ),
    "crit header": (
        R.FORBIDDEN_HEADER,
        lambda s, k, c, t: ed25519(k, _header(k, crit=["exp"]), claims(s.settings, c)),
    ),
    "b64=false (RFC 7797) header": (
        R.FORBIDDEN_HEADER,
        lambda s, k, c, t: ed25519(k, _header(k, b64=False), claims(s.settings, c)),
    ),
    "JWT typ (e.g. an ID token)": (
        R.WRONG_TYPE,
        lambda s, k, c, t: ed25519(k, _header(k, typ="JWT"), claims(s.settings, c)),
    ),
    "no typ": (
        R.WRONG_TYPE,
        lambda s, k, c, t: ed25519(k, _header(k, typ=None), claims(s.settings, c)),
    ),
    "duplicate alg members": (
        R.MALFORMED,
        lambda s, k, c, t: ed25519(
            k,
            f'{{"alg":"none","alg":"EdDSA","kid":"{k.kid}","typ":"at+jwt"}}'.encode(),
            claims(s.settings, c),
        ),
    ),
    "duplicate sub members": (
        R.MALFORMED,
        lambda s, k, c, t: ed25519(
            k, _header(k), json.dumps(claims(s.settings, c))[:-1].encode() + b',"sub":"admin"}'
        ),
    ),
    "header not an object": (R.MALFORMED, lambda s, k, c, t: ed25519(k, b"[1]", b"{}")),
    "payload not an object": (R.MALFORMED, lambda s, k, c, t: ed25519(k, _header(k), b'["x"]')),
    "payload not JSON": (R.MALFORMED, lambda s, k, c, t: ed25519(k, _header(k), b"\xff\xfe")),
    "NaN exp": (
        R.MALFORMED,
        lambda s, k, c, t: ed25519(
            k, _header(k), json.dumps(claims(s.settings, c)).replace('"exp": ', '"exp": NaN, "x": ').encode()
        ),
    ),
    "exp as a string": (
        R.INVALID_CLAIM,
        lambda s, k, c, t: ed25519(k, _header(k), claims(s.settings, c, exp=str(_now(c) + 60))),
    ),
    "exp as true": (
        R.INVALID_CLAIM,
        lambda s, k, c, t: ed25519(k, _header(k), claims(s.settings, c, exp=True)),
    ),
    "exp beyond datetime": (
        R.INVALID_CLAIM,
        lambda s, k, c, t: ed25519(k, _header(k), claims(s.settings, c, exp=10**30)),
    ),
    "aud as a number": (
        R.INVALID_CLAIM,
        lambda s, k, c, t: ed25519(k, _header(k), claims(s.settings, c, aud=5)),
    ),
    "unknown amr": (
        R.INVALID_CLAIM,
        lambda s, k, c, t: ed25519(k, _header(k), claims(s.settings, c, amr=["magic"])),
    ),
    "empty sub": (
        R.INVALID_CLAIM,
        lambda s, k, c, t: ed25519(k, _header(k), claims(s.settings, c, sub="")),
    ),
    "oversized token": (R.MALFORMED, lambda s, k, c, t: t + "A" * 9000),
    "not base64url": (R.MALFORMED, lambda s, k, c, t: t.replace(".", ".+/=", 1)),
    "empty string": (R.MALFORMED, lambda s, k, c, t: ""),
    "not a string": (R.MALFORMED, lambda s, k, c, t: t.encode()),
    "JWE-shaped (five segments)": (R.MALFORMED, lambda s, k, c, t: t + ".AA.AA"),
}
for _claim in ("iss", "aud", "sub", "exp", "iat", "nbf", "jti", "sid", "amr", "acr"):
    ATTACKS[f"missing {_claim}"] = (
        R.MISSING_CLAIM,
        lambda s, k, c, t, _claim=_claim: ed25519(
            k, _header(k), claims(s.settings, c, **{_claim: None})
        ),
    )


def _now(clock: FrozenClock) -> int:
    return int(clock.now().timestamp())


async def _refusal(service: AccessTokenService, token: object) -> InvalidToken:
    with pytest.raises(InvalidToken) as info:
        await service.verify(token)  # type: ignore[arg-type]
    return info.value


@pytest.mark.parametrize("name", list(ATTACKS))
async def test_attack_is_refused(
    service: AccessTokenService, clock: FrozenClock, token: str, name: str
) -> None:
    reason, build = ATTACKS[name]
    key = await service.keys.active_key()
    assert (await service.verify(token)).subject == "user-1"  # the control works at all
    error = await _refusal(service, build(service, key, clock, token))
    assert error.reason is reason
    assert error.__suppress_context__ or error.__cause__ is None


async def test_all_refusals_look_the_same(
    service: AccessTokenService, clock: FrozenClock, token: str
) -> None:
    key = await service.keys.active_key()
    errors = [await _refusal(service, build(service, key, clock, token)) for _, build in ATTACKS.values()]
    assert len({e.reason for e in errors}) == len(set(R))  # every reason is exercised
    faces = {(str(e), e.detail, e.code, e.status, e.title, tuple(e.headers.items())) for e in errors}
    assert faces == {
        (
            "The access token is invalid",
            "The access token is invalid",
            "invalid_token",
            401,
            "The access token is invalid",
            (("WWW-Authenticate", 'Bearer error="invalid_token"'),),
        )
    }


async def test_forged_tokens_are_well_formed_apart_from_the_attack(
    service: AccessTokenService, clock: FrozenClock
) -> None:
    # The forging helper itself produces tokens the verifier accepts: the attacks above fail
    # for the reason they name, not because the forgery is broken.
    key = await service.keys.active_key()
    verified = await service.verify(ed25519(key, _header(key), claims(service.settings, clock)))
    assert verified.jti == "jti-1"


async def test_es256_token_is_refused_by_an_eddsa_verifier(
    service: AccessTokenService, clock: FrozenClock
) -> None:
    es_settings = service.settings.model_copy(update={"algorithm": SigningAlgorithm.ES256})
    es_service = AccessTokenService(es_settings, service.keys, clock)
    # Same store, so the ES256 kid is known to the EdDSA verifier: only the pin stops it.
    es_key = await es_service.ensure_active_key()
    assert es_key.algorithm is SigningAlgorithm.ES256
    token = await es_service.issue(
        subject="user-1", session_id="s", amr=[AuthMethod.PASSWORD], acr=AssuranceLevel.AAL1
    )
    assert (await es_service.verify(token)).subject == "user-1"
    assert (await _refusal(service, token)).reason is R.ALGORITHM_NOT_ALLOWED
