"""Attack tests: forged and doctored access tokens against ``GET /v1/account``.

Every forgery must be refused with the same opaque 401 ``invalid_token`` answer, whatever check
it fails (a different answer per failure is an oracle that tells an attacker how far a forgery
got). Forgeries built from a genuine token keep its valid ``sub`` and ``sid``, so each one
differs from an accepted token by exactly the defect under test; the genuine token is checked
to work first (without that control the refusals would prove nothing).

Some forgeries are signed with the server's own key: an attacker who stole it is out of scope,
but the claim checks (``exp``, ``aud``, ``iss``, ``typ``) must hold even for a good signature.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from tests.functional import identity_fixtures
from tests.functional.identity_helpers import (
    Login,
    assert_problem,
    b64url,
    comparable,
    create_account,
    encode_segment,
    jwt_parts,
    login,
)

from bastion.config import Settings

# Shared fixtures (see identity_fixtures); this module defines only its variants.
settings, app, client = (
    identity_fixtures.sqlite_settings,
    identity_fixtures.app,
    identity_fixtures.client,
)


@pytest.fixture
async def session(client: httpx.AsyncClient, settings: Settings) -> Login:
    return await login(client, await create_account(client, settings))


async def server_key(app: FastAPI) -> Any:
    """The server's active signing key (a ``SigningKey``)."""
    return await app.state.services.access_tokens.keys.active_key()


def attacker_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def public_jwk(key: Ed25519PrivateKey) -> dict[str, str]:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"kty": "OKP", "crv": "Ed25519", "x": b64url(raw)}


def thumbprint(jwk: dict[str, str]) -> str:
    """RFC 7638 thumbprint of an OKP key: how Bastion names its kids."""
    canonical = json.dumps({k: jwk[k] for k in ("crv", "kty", "x")}, separators=(",", ":"))
    return b64url(hashlib.sha256(canonical.encode()).digest())


def ed25519_sign(key: Ed25519PrivateKey, header: dict[str, Any], payload: Any) -> str:
    signing_input = f"{encode_segment(header)}.{encode_segment(payload)}"
    return f"{signing_input}.{b64url(key.sign(signing_input.encode()))}"


def hs256_sign(secret: bytes, header: dict[str, Any], payload: dict[str, Any]) -> str:
    signing_input = f"{encode_segment(header)}.{encode_segment(payload)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


Forgery = Callable[[str, Any], str]


def _with_claims(**changes: Any) -> Forgery:
    """A genuine token re-signed with the server's key after changing claims (None: remove)."""

    def forge(genuine: str, key: Any) -> str:
        header, payload, _ = jwt_parts(genuine)
        payload.update(changes)
        payload = {k: v for k, v in payload.items() if v is not None}
        return ed25519_sign(key.key.private_key, header, payload)

    return forge


def _with_header(**changes: Any) -> Forgery:
    def forge(genuine: str, key: Any) -> str:
        header, payload, _ = jwt_parts(genuine)
        header.update(changes)
        header = {k: v for k, v in header.items() if v is not None}
        return ed25519_sign(key.key.private_key, header, payload)

    return forge


def _alg_none(signature: str) -> Forgery:
    def forge(genuine: str, _: Any) -> str:
        header, payload, _ = jwt_parts(genuine)
        header["alg"] = "none"
        return f"{encode_segment(header)}.{encode_segment(payload)}.{signature}"

    return forge


def _alg_none_uppercase(genuine: str, _: Any) -> str:
    header, payload, _ = jwt_parts(genuine)
    header["alg"] = "None"
    return f"{encode_segment(header)}.{encode_segment(payload)}."


def _hs256_with(public_bytes: Callable[[Any], bytes]) -> Forgery:
    """Algorithm confusion: HMAC keyed with the server's *public* key in some encoding."""

    def forge(genuine: str, key: Any) -> str:
        header, payload, _ = jwt_parts(genuine)
        header["alg"] = "HS256"
        return hs256_sign(public_bytes(key), header, payload)

    return forge


def _public_raw(key: Any) -> bytes:
    return key.key.public_key.public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )


def _public_pem(key: Any) -> bytes:
    return key.key.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _public_jwk_json(key: Any) -> bytes:
    return json.dumps(key.public_jwk()).encode()


def _expired(genuine: str, key: Any) -> str:
    past = int(time.time()) - 3600  # far beyond any leeway
    return _with_claims(iat=past - 300, nbf=past - 300, exp=past)(genuine, key)


def _not_yet_valid(genuine: str, key: Any) -> str:
    future = int(time.time()) + 3600
    return _with_claims(nbf=future, iat=future, exp=future + 300)(genuine, key)


def _tampered_payload(genuine: str, _: Any) -> str:
    """Claims changed, signature kept: the classic privilege escalation attempt."""
    header, payload, signature = jwt_parts(genuine)
    payload["sub"] = payload["sub"] + "0"
    payload["exp"] = payload["exp"] + 86_400
    return f"{encode_segment(header)}.{encode_segment(payload)}.{signature}"


def _tampered_header(genuine: str, _: Any) -> str:
    header, payload, signature = jwt_parts(genuine)
    header["typ"] = "JWT"
    return f"{encode_segment(header)}.{encode_segment(payload)}.{signature}"


def _stripped_signature(genuine: str, _: Any) -> str:
    header, payload, _ = genuine.split(".")
    return f"{header}.{payload}."


def _two_segments(genuine: str, _: Any) -> str:
    header, payload, _ = genuine.split(".")
    return f"{header}.{payload}"


def _flipped_signature(genuine: str, _: Any) -> str:
    head, _, signature = genuine.rpartition(".")
    flipped = ("B" if signature[0] == "A" else "A") + signature[1:]
    return f"{head}.{flipped}"


def _unknown_kid(genuine: str, _: Any) -> str:
    """Signed by the attacker, naming a kid the server does not have."""
    header, payload, _ = jwt_parts(genuine)
    header["kid"] = "attacker-key-1"
    return ed25519_sign(attacker_key(), header, payload)


def _server_kid_attacker_signature(genuine: str, _: Any) -> str:
    header, payload, _ = jwt_parts(genuine)
    return ed25519_sign(attacker_key(), header, payload)


def _embedded_jwk(*, kid_of: str) -> Forgery:
    """The token carries its own verification key (CVE-2018-0114 style)."""

    def forge(genuine: str, _: Any) -> str:
        header, payload, _ = jwt_parts(genuine)
        key = attacker_key()
        jwk = public_jwk(key)
        header["jwk"] = jwk
        if kid_of == "attacker":
            header["kid"] = thumbprint(jwk)
        return ed25519_sign(key, header, payload)

    return forge


def _header_url(member: str) -> Forgery:
    """The token names a URL to fetch its key from (jku, x5u)."""

    def forge(genuine: str, _: Any) -> str:
        header, payload, _ = jwt_parts(genuine)
        key = attacker_key()
        header[member] = "https://attacker.example/jwks.json"
        header["kid"] = thumbprint(public_jwk(key))
        return ed25519_sign(key, header, payload)

    return forge


def _x5c(genuine: str, _: Any) -> str:
    header, payload, _ = jwt_parts(genuine)
    key = attacker_key()
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header["x5c"] = [b64url(der)]
    return ed25519_sign(key, header, payload)


def _crit(genuine: str, key: Any) -> str:
    return _with_header(crit=["exp"], exp=1)(genuine, key)


def _duplicate_claim(genuine: str, key: Any) -> str:
    """Two "sub" members: parsers that keep the first and the last one disagree."""
    header, payload, _ = jwt_parts(genuine)
    body = json.dumps(payload)[:-1] + ', "sub": "someone-else"}'
    signing_input = f"{encode_segment(header)}.{b64url(body.encode())}"
    signature = key.key.private_key.sign(signing_input.encode())
    return f"{signing_input}.{b64url(signature)}"


def _not_json(genuine: str, key: Any) -> str:
    header, _, _ = jwt_parts(genuine)
    return ed25519_sign(key.key.private_key, header, b"not json")


def _es256_header(genuine: str, key: Any) -> str:
    return _with_header(alg="ES256")(genuine, key)


def _oversized(genuine: str, key: Any) -> str:
    return _with_claims(padding="x" * 20_000)(genuine, key)


FORGERIES: dict[str, Forgery] = {
    "alg-none-empty-signature": _alg_none(""),
    "alg-none-with-signature": _alg_none("c2lnbmF0dXJl"),
    "alg-None-uppercase": _alg_none_uppercase,
    "hs256-public-key-raw": _hs256_with(_public_raw),
    "hs256-public-key-pem": _hs256_with(_public_pem),
    "hs256-public-key-jwk": _hs256_with(_public_jwk_json),
    "es256-header-eddsa-signature": _es256_header,
    "expired": _expired,
    "not-yet-valid": _not_yet_valid,
    "wrong-audience": _with_claims(aud="another-service"),
    "wrong-audience-list": _with_claims(aud=["another-service"]),
    "wrong-issuer": _with_claims(iss="https://attacker.example"),
    "missing-exp": _with_claims(exp=None),
    "missing-sid": _with_claims(sid=None),
    "missing-aud": _with_claims(aud=None),
    "exp-as-string": _with_claims(exp="9999999999"),
    "exp-as-bool": _with_claims(exp=True),
    "wrong-typ-id-token": _with_header(typ="JWT"),
    "missing-typ": _with_header(typ=None),
    "missing-kid": _with_header(kid=None),
    "unknown-kid": _unknown_kid,
    "server-kid-attacker-signature": _server_kid_attacker_signature,
    "tampered-payload": _tampered_payload,
    "tampered-header": _tampered_header,
    "stripped-signature": _stripped_signature,
    "two-segments": _two_segments,
    "flipped-signature": _flipped_signature,
    "embedded-jwk-attacker-kid": _embedded_jwk(kid_of="attacker"),
    "embedded-jwk-server-kid": _embedded_jwk(kid_of="server"),
    "jku": _header_url("jku"),
    "x5u": _header_url("x5u"),
    "x5c": _x5c,
    "crit": _crit,
    "duplicate-claim": _duplicate_claim,
    "payload-not-json": _not_json,
    "oversized": _oversized,
    "garbage": lambda _g, _k: "not-a-jwt",
    "empty-segments": lambda _g, _k: "..",
}


async def _refused(client: httpx.AsyncClient, token: str) -> httpx.Response:
    response = await client.get("/v1/account", headers={"Authorization": f"Bearer {token}"})
    assert_problem(response, 401, "invalid_token")
    return response


async def test_genuine_token_is_accepted(client: httpx.AsyncClient, session: Login) -> None:
    """The control: without it, every refusal below could be an unrelated failure."""
    response = await client.get("/v1/account", headers=session.headers)
    assert response.status_code == 200, response.text
    header, payload, _ = jwt_parts(session.access_token)
    assert header["alg"] in {"EdDSA", "Ed25519"}
    assert header["typ"] == "at+jwt"
    assert header["kid"]
    assert set(payload) >= {"iss", "aud", "sub", "exp", "iat", "nbf", "jti", "sid", "amr", "acr"}
    assert payload["sid"] == session.session_id
    assert payload["exp"] - payload["iat"] == 300  # 5 minutes by default


@pytest.mark.parametrize("name", list(FORGERIES))
async def test_forged_token_is_refused(
    app: FastAPI, client: httpx.AsyncClient, session: Login, name: str
) -> None:
    forged = FORGERIES[name](session.access_token, await server_key(app))
    assert forged != session.access_token
    await _refused(client, forged)


async def test_every_forgery_gets_the_same_opaque_answer(
    app: FastAPI, client: httpx.AsyncClient, session: Login
) -> None:
    """One answer for all: status, body (but its request id) and headers are identical."""
    key = await server_key(app)
    answers = {}
    for name, forge in FORGERIES.items():
        response = await _refused(client, forge(session.access_token, key))
        answers[name] = comparable(response)
    reference = answers["garbage"]
    different = {name: answer for name, answer in answers.items() if answer != reference}
    assert not different, f"reference {reference}\ndifferent: {sorted(different)}"
    body = reference[1]
    assert "detail" not in body or "signature" not in str(body["detail"]).lower()


async def test_tampered_subject_cannot_reach_another_account(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    """Swap in a real victim's ``sub`` (the attacker knows ids from events or URLs)."""
    attacker = await login(client, await create_account(client, settings))
    victim = await login(client, await create_account(client, settings))
    _, victim_claims, _ = jwt_parts(victim.access_token)
    header, payload, signature = jwt_parts(attacker.access_token)
    payload["sub"] = victim_claims["sub"]
    forged = f"{encode_segment(header)}.{encode_segment(payload)}.{signature}"
    await _refused(client, forged)
    payload["sid"] = victim_claims["sid"]
    await _refused(client, f"{encode_segment(header)}.{encode_segment(payload)}.{signature}")


@pytest.mark.parametrize(
    "authorization",
    ["Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Token abc", "bearer", "Bearer a b"],
)
async def test_malformed_authorization_is_refused(
    client: httpx.AsyncClient, authorization: str
) -> None:
    response = await client.get("/v1/account", headers={"Authorization": authorization})
    assert response.status_code == 401, response.text
    assert response.json()["code"] in {"not_authenticated", "invalid_token"}


async def test_missing_authentication(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/v1/account"), 401, "not_authenticated")


async def test_jwks_publishes_public_keys_only(app: FastAPI, client: httpx.AsyncClient) -> None:
    response = await client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    keys = response.json()["keys"]
    assert keys
    private_members = {"d", "p", "q", "dp", "dq", "qi", "k"}
    for jwk in keys:
        assert not private_members & set(jwk), jwk
        assert jwk["kty"] in {"OKP", "EC"}
    assert (await server_key(app)).kid in {jwk["kid"] for jwk in keys}
