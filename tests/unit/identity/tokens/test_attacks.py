"""Every attack on the verifier is refused, with one opaque error; ``reason`` tells them apart.

Each case would be accepted by a verifier missing the control it names. Tokens are forged byte
by byte (:mod:`forge`), so no library check stands between the attack and our verifier.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from tests.unit.identity.tokens import forge

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

R = InvalidTokenReason


@dataclass
class Ctx:
    """What an attack is built from: the verifier's settings and key, the clock, a valid token."""

    service: AccessTokenService
    key: SigningKey
    clock: FrozenClock
    token: str

    @property
    def now(self) -> int:
        return int(self.clock.now().timestamp())

    def header(self, **overrides: Any) -> dict[str, Any]:
        header: dict[str, Any] = {"alg": "EdDSA", "kid": self.key.kid, "typ": "at+jwt"}
        header.update(overrides)
        return {k: v for k, v in header.items() if v is not None}

    def claims(self, **overrides: Any) -> dict[str, Any]:
        return forge.claims(self.service.settings, self.clock, **overrides)

    def signed(
        self,
        header: dict[str, Any] | bytes | None = None,
        payload: dict[str, Any] | bytes | None = None,
        key: SigningKey | None = None,
    ) -> str:
        header = self.header() if header is None else header
        payload = self.claims() if payload is None else payload
        return forge.ed25519(key or self.key, header, payload)

    def attacker(self) -> SigningKey:
        return SigningKey.generate(clock=self.clock, lifetime=timedelta(days=1))

    def public_pem(self) -> bytes:
        return self.key.key.public_key.public_bytes(  # type: ignore[union-attr]
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def _tamper_payload(token: str) -> str:
    header, payload, signature = token.split(".")
    body = json.loads(forge.unb64(payload))
    body["sub"] = "admin"
    return f"{header}.{forge.encode(body)}.{signature}"


def _with_attacker_key_in_header(x: Ctx) -> str:
    attacker = x.attacker()
    return x.signed(x.header(jwk=attacker.public_jwk()), key=attacker)


ATTACKS: dict[str, tuple[R, Callable[[Ctx], Any]]] = {
    # -- algorithm confusion -------------------------------------------------------------
    # RFC 7515 A.5 shape: the empty signature is refused before the header is trusted.
    "alg none": (
        R.MALFORMED,
        lambda x: f"{forge.encode(x.header(alg='none'))}.{forge.encode(x.claims())}.",
    ),
    "alg none with a dummy signature": (
        R.ALGORITHM_NOT_ALLOWED,
        lambda x: f"{forge.encode(x.header(alg='none'))}.{forge.encode(x.claims())}.AA",
    ),
    "alg None (case variant)": (R.ALGORITHM_NOT_ALLOWED, lambda x: x.signed(x.header(alg="None"))),
    "HS256 keyed with the public key PEM": (
        R.ALGORITHM_NOT_ALLOWED,
        lambda x: forge.hs256(x.public_pem(), x.header(alg="HS256"), x.claims()),
    ),
    "HS256 keyed with the raw public key": (
        R.ALGORITHM_NOT_ALLOWED,
        lambda x: forge.hs256(
            forge.unb64(x.key.public_jwk()["x"]), x.header(alg="HS256"), x.claims()
        ),
    ),
    "HS256 keyed with the public JWK JSON": (
        R.ALGORITHM_NOT_ALLOWED,
        lambda x: forge.hs256(
            json.dumps(x.key.public_jwk()).encode(), x.header(alg="HS256"), x.claims()
        ),
    ),
    "RS256 claimed": (R.ALGORITHM_NOT_ALLOWED, lambda x: x.signed(x.header(alg="RS256"))),
    "ES256 claimed": (R.ALGORITHM_NOT_ALLOWED, lambda x: x.signed(x.header(alg="ES256"))),
    "alg missing": (R.ALGORITHM_NOT_ALLOWED, lambda x: x.signed(x.header(alg=None))),
    # -- time ----------------------------------------------------------------------------
    "expired": (R.EXPIRED, lambda x: x.signed(payload=x.claims(exp=x.now - 30))),
    "not yet valid": (R.NOT_YET_VALID, lambda x: x.signed(payload=x.claims(nbf=x.now + 31))),
    "issued in the future": (
        R.ISSUED_IN_FUTURE,
        lambda x: x.signed(payload=x.claims(iat=x.now + 31)),
    ),
    # -- audience and issuer ---------------------------------------------------------------
    "wrong audience": (R.WRONG_AUDIENCE, lambda x: x.signed(payload=x.claims(aud="https://other"))),
    "wrong audiences in a list": (
        R.WRONG_AUDIENCE,
        lambda x: x.signed(payload=x.claims(aud=["a", "b"])),
    ),
    "wrong issuer": (R.WRONG_ISSUER, lambda x: x.signed(payload=x.claims(iss="https://evil"))),
    # -- keys ------------------------------------------------------------------------------
    "unknown kid": (
        R.UNKNOWN_KID,
        lambda x: (k := x.attacker()) and x.signed(x.header(kid=k.kid), key=k),
    ),
    "our kid, attacker's signature": (R.BAD_SIGNATURE, lambda x: x.signed(key=x.attacker())),
    "missing kid": (R.MISSING_KID, lambda x: x.signed(x.header(kid=None))),
    "kid not a string": (R.MISSING_KID, lambda x: x.signed(x.header(kid=7))),
    "embedded jwk header": (R.FORBIDDEN_HEADER, _with_attacker_key_in_header),
    "jku header": (
        R.FORBIDDEN_HEADER,
        lambda x: x.signed(x.header(jku="https://evil.example/jwks")),
    ),
    "x5u header": (R.FORBIDDEN_HEADER, lambda x: x.signed(x.header(x5u="https://evil.example/c"))),
    "x5c header": (R.FORBIDDEN_HEADER, lambda x: x.signed(x.header(x5c=["MIIB"]))),
    "crit header": (R.FORBIDDEN_HEADER, lambda x: x.signed(x.header(crit=["exp"], exp=1))),
    "b64=false (RFC 7797) header": (R.FORBIDDEN_HEADER, lambda x: x.signed(x.header(b64=False))),
    # -- signature and integrity -----------------------------------------------------------
    "tampered payload": (R.BAD_SIGNATURE, lambda x: _tamper_payload(x.token)),
    "stripped signature": (R.MALFORMED, lambda x: x.token.rsplit(".", 1)[0] + "."),
    "signature removed entirely": (R.MALFORMED, lambda x: x.token.rsplit(".", 1)[0]),
    "truncated signature": (R.BAD_SIGNATURE, lambda x: x.token[:-4]),
    # -- token confusion -------------------------------------------------------------------
    "JWT typ (e.g. an ID token)": (R.WRONG_TYPE, lambda x: x.signed(x.header(typ="JWT"))),
    "no typ": (R.WRONG_TYPE, lambda x: x.signed(x.header(typ=None))),
    # -- parser differentials and garbage --------------------------------------------------
    "duplicate alg members": (
        R.MALFORMED,
        lambda x: x.signed(
            f'{{"alg":"none","alg":"EdDSA","kid":"{x.key.kid}","typ":"at+jwt"}}'.encode()
        ),
    ),
    "duplicate sub members": (
        R.MALFORMED,
        lambda x: x.signed(payload=json.dumps(x.claims())[:-1].encode() + b',"sub":"admin"}'),
    ),
    "NaN exp": (
        R.MALFORMED,
        lambda x: x.signed(
            payload=json.dumps(x.claims()).replace('"exp": ', '"exp": NaN, "e": ').encode()
        ),
    ),
    "header not an object": (R.MALFORMED, lambda x: x.signed(b"[1]", b"{}")),
    "payload not an object": (R.MALFORMED, lambda x: x.signed(payload=b'["x"]')),
    "payload not JSON": (R.MALFORMED, lambda x: x.signed(payload=b"\xff\xfe")),
    "oversized token": (R.MALFORMED, lambda x: x.token + "A" * 9000),
    "not base64url": (R.MALFORMED, lambda x: x.token.replace(".", ".+/=", 1)),
    "empty string": (R.MALFORMED, lambda _: ""),
    "not a string": (R.MALFORMED, lambda x: x.token.encode()),
    "JWE-shaped (five segments)": (R.MALFORMED, lambda x: x.token + ".AA.AA"),
    # -- claim types -----------------------------------------------------------------------
    "exp as a string": (R.INVALID_CLAIM, lambda x: x.signed(payload=x.claims(exp=str(x.now + 60)))),
    "exp as true": (R.INVALID_CLAIM, lambda x: x.signed(payload=x.claims(exp=True))),
    "exp as a float": (R.INVALID_CLAIM, lambda x: x.signed(payload=x.claims(exp=x.now + 60.5))),
    "exp beyond any date": (R.INVALID_CLAIM, lambda x: x.signed(payload=x.claims(exp=10**30))),
    "aud as a number": (R.INVALID_CLAIM, lambda x: x.signed(payload=x.claims(aud=5))),
    "unknown amr": (R.INVALID_CLAIM, lambda x: x.signed(payload=x.claims(amr=["magic"]))),
    "empty amr": (R.INVALID_CLAIM, lambda x: x.signed(payload=x.claims(amr=[]))),
    "unknown acr": (R.INVALID_CLAIM, lambda x: x.signed(payload=x.claims(acr="aal9"))),
    "empty sub": (R.INVALID_CLAIM, lambda x: x.signed(payload=x.claims(sub=""))),
    "sid as an object": (R.INVALID_CLAIM, lambda x: x.signed(payload=x.claims(sid={"a": 1}))),
}
for _claim in ("iss", "aud", "sub", "exp", "iat", "nbf", "jti", "sid", "amr", "acr"):
    ATTACKS[f"missing {_claim}"] = (
        R.MISSING_CLAIM,
        lambda x, _claim=_claim: x.signed(payload=x.claims(**{_claim: None})),
    )


@pytest.fixture
async def ctx(service: AccessTokenService, clock: FrozenClock, token: str) -> Ctx:
    return Ctx(service, await service.keys.active_key(), clock, token)


async def _refusal(service: AccessTokenService, token: object) -> InvalidToken:
    with pytest.raises(InvalidToken) as info:
        await service.verify(token)  # type: ignore[arg-type]
    return info.value


@pytest.mark.parametrize("name", list(ATTACKS))
async def test_attack_is_refused(ctx: Ctx, name: str) -> None:
    reason, build = ATTACKS[name]
    assert (await ctx.service.verify(ctx.token)).subject == "user-1"  # the verifier works at all
    error = await _refusal(ctx.service, build(ctx))
    assert error.reason is reason
    assert error.__cause__ is None  # no library message chained into logs or responses


async def test_all_refusals_look_the_same(ctx: Ctx) -> None:
    errors = [await _refusal(ctx.service, build(ctx)) for _, build in ATTACKS.values()]
    # Every reason of the JWT verifier is exercised (the session and refresh-token reasons are
    # tests/unit/identity/sessions/test_services.py's).
    session_reasons = {R.SESSION_REVOKED, R.SESSION_EXPIRED, R.UNKNOWN_TOKEN, R.REUSED}
    assert {e.reason for e in errors} == set(R) - session_reasons
    faces = {
        (str(e), e.detail, e.code, e.status, e.title, tuple(e.headers.items())) for e in errors
    }
    message = "The access token is invalid"
    bearer = (("WWW-Authenticate", 'Bearer error="invalid_token"'),)
    assert faces == {(message, message, "invalid_token", 401, message, bearer)}


async def test_the_forgery_helper_makes_acceptable_tokens(ctx: Ctx) -> None:
    # So the attacks above fail for the reason they name, not because forging is broken.
    assert (await ctx.service.verify(ctx.signed())).jti == "jti-1"
    assert await ctx.service.verify(ctx.signed(payload=ctx.claims(exp=ctx.now - 29)))  # leeway


async def test_es256_token_is_refused_by_an_eddsa_verifier(ctx: Ctx) -> None:
    es_settings = ctx.service.settings.model_copy(update={"algorithm": SigningAlgorithm.ES256})
    es_service = AccessTokenService(es_settings, ctx.service.keys, ctx.clock)
    # The same store: the ES256 kid is known to the EdDSA verifier; only the pin refuses it.
    assert (await es_service.ensure_active_key()).algorithm is SigningAlgorithm.ES256
    token = await es_service.issue(
        subject="user-1", session_id="s", amr=[AuthMethod.PASSWORD], acr=AssuranceLevel.AAL1
    )
    assert (await es_service.verify(token)).subject == "user-1"
    assert (await _refusal(ctx.service, token)).reason is R.ALGORITHM_NOT_ALLOWED
    # An EdDSA header naming the ES256 key's kid: the key's own algorithm must match too.
    es_kid = (await es_service.keys.active_key()).kid
    mixed = ctx.signed(ctx.header(kid=es_kid))
    assert (await _refusal(ctx.service, mixed)).reason is R.ALGORITHM_NOT_ALLOWED
