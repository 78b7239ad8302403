"""Issuing and verifying access tokens: claims, header, time windows, rotation."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from tests.unit.identity.tokens.forge import unb64

from bastion.clock import FrozenClock
from bastion.identity.tokens import (
    AccessTokenService,
    AccessTokenSettings,
    AssuranceLevel,
    AuthMethod,
    InMemoryKeyStore,
    InvalidToken,
    InvalidTokenReason,
    SigningAlgorithm,
    SigningKey,
    SigningKeyError,
    issue_access_token,
    verify_access_token,
)

R = InvalidTokenReason
PWD = [AuthMethod.PASSWORD]


async def _reason(service: AccessTokenService, token: str, **kwargs: str) -> R:
    with pytest.raises(InvalidToken) as info:
        await service.verify(token, **kwargs)
    return info.value.reason


async def test_claims_and_header(service: AccessTokenService, token: str) -> None:
    header_segment, payload_segment, _ = token.split(".")
    header = json.loads(unb64(header_segment))
    key = await service.keys.active_key()
    assert header == {"alg": "EdDSA", "kid": key.kid, "typ": "at+jwt"}
    body = json.loads(unb64(payload_segment))
    assert set(body) == {"iss", "aud", "sub", "exp", "iat", "nbf", "jti", "sid", "amr", "acr"}
    assert body["exp"] - body["iat"] == 300  # the 5-minute default
    assert body["nbf"] == body["iat"]
    assert len(unb64(body["jti"])) == 16

    claims = await service.verify(token)
    assert claims.issuer == "https://id.example.com"
    assert claims.audience == ("https://api.example.com",)
    assert (claims.subject, claims.session_id) == ("user-1", "session-1")
    assert claims.amr == (AuthMethod.PASSWORD, AuthMethod.OTP)
    assert claims.acr is AssuranceLevel.AAL2
    assert claims.kid == key.kid
    assert claims.expires_at - claims.issued_at == timedelta(minutes=5)


async def test_every_token_gets_its_own_jti(service: AccessTokenService) -> None:
    tokens = [
        await service.issue(subject="u", session_id="s", amr=PWD, acr=AssuranceLevel.AAL1)
        for _ in range(50)
    ]
    assert len({(await service.verify(t)).jti for t in tokens}) == 50


async def test_expiry_with_leeway(
    service: AccessTokenService, clock: FrozenClock, token: str
) -> None:
    clock.advance(timedelta(seconds=300 + 29))  # within the 30 s leeway
    assert await service.verify(token)
    clock.advance(timedelta(seconds=1))
    assert await _reason(service, token) is R.EXPIRED


async def test_not_valid_before_issue_time_beyond_leeway(
    service: AccessTokenService, clock: FrozenClock, token: str
) -> None:
    clock.advance(timedelta(seconds=-30))
    assert await service.verify(token)
    clock.advance(timedelta(seconds=-1))
    assert await _reason(service, token) is R.NOT_YET_VALID


async def test_audience_override(service: AccessTokenService) -> None:
    token = await service.issue(
        subject="u", session_id="s", amr=PWD, acr=AssuranceLevel.AAL1, audience="https://other"
    )
    assert await _reason(service, token) is R.WRONG_AUDIENCE
    assert (await service.verify(token, audience="https://other")).audience == ("https://other",)


async def test_issuer_mismatch_between_deployments(
    service: AccessTokenService, clock: FrozenClock, token: str
) -> None:
    other = AccessTokenService(
        service.settings.model_copy(update={"issuer": "https://staging.example.com"}),
        service.keys,
        clock,
    )
    assert await _reason(other, token) is R.WRONG_ISSUER


async def test_ttl_can_be_shortened_never_lengthened(service: AccessTokenService) -> None:
    short = await service.issue(
        subject="u", session_id="s", amr=PWD, acr=AssuranceLevel.AAL1, ttl=timedelta(seconds=60)
    )
    claims = await service.verify(short)
    assert claims.expires_at - claims.issued_at == timedelta(seconds=60)
    for ttl in (timedelta(seconds=301), timedelta(0)):
        with pytest.raises(ValueError, match="ttl"):
            await service.issue(
                subject="u", session_id="s", amr=PWD, acr=AssuranceLevel.AAL1, ttl=ttl
            )


@pytest.mark.parametrize("subject", ["", "x" * 256])
async def test_bad_identifiers_are_refused_at_issue(
    service: AccessTokenService, subject: str
) -> None:
    with pytest.raises(ValueError, match="subject"):
        await service.issue(subject=subject, session_id="s", amr=PWD, acr=AssuranceLevel.AAL1)
    with pytest.raises(ValueError, match="amr"):
        await service.issue(subject="u", session_id="s", amr=[], acr=AssuranceLevel.AAL1)


async def test_no_active_key_fails_closed(
    clock: FrozenClock, settings: AccessTokenSettings
) -> None:
    empty = InMemoryKeyStore.from_settings(settings, clock)
    with pytest.raises(SigningKeyError):
        await issue_access_token(
            empty,
            settings,
            subject="u",
            session_id="s",
            amr=PWD,
            acr=AssuranceLevel.AAL1,
            clock=clock,
        )


async def test_rotation_previous_key_verifies_until_its_tokens_expire(
    service: AccessTokenService, clock: FrozenClock, token: str
) -> None:
    old_key = await service.keys.active_key()
    clock.advance(timedelta(minutes=2))
    rotated = SigningKey.generate(clock=clock, lifetime=timedelta(days=90))
    await service.keys.rotate(rotated)
    assert (await service.keys.active_key()).kid == rotated.kid

    # The token signed by the previous key still verifies until it expires...
    assert (await service.verify(token)).kid == old_key.kid
    jwks_kids = {k["kid"] for k in (await service.jwks())["keys"]}
    assert jwks_kids == {old_key.kid, rotated.kid}
    fresh = await service.issue(subject="u", session_id="s", amr=PWD, acr=AssuranceLevel.AAL1)
    assert (await service.verify(fresh)).kid == rotated.kid

    # ...and once every token it signed is past exp + leeway, the old key is gone.
    clock.advance(service.settings.verification_grace + timedelta(seconds=1))
    assert await _reason(service, token) is R.UNKNOWN_KID
    assert {k["kid"] for k in (await service.jwks())["keys"]} == {rotated.kid}
    assert await service.verify(
        await service.issue(subject="u", session_id="s", amr=PWD, acr=AssuranceLevel.AAL1)
    )


async def test_ensure_active_key_rotates_when_the_key_expires(
    service: AccessTokenService, clock: FrozenClock
) -> None:
    first = await service.ensure_active_key()
    assert await service.ensure_active_key() is first
    clock.advance(service.settings.key_lifetime)
    with pytest.raises(SigningKeyError):  # the 90-day key has stopped signing
        await service.keys.active_key()
    second = await service.ensure_active_key()
    assert second.kid != first.kid
    assert second.created_at == clock.now()


@pytest.mark.parametrize("algorithm", list(SigningAlgorithm))
async def test_every_algorithm_round_trips(clock: FrozenClock, algorithm: SigningAlgorithm) -> None:
    settings = AccessTokenSettings(algorithm=algorithm)
    keys = InMemoryKeyStore.from_settings(settings, clock)
    service = AccessTokenService(settings, keys, clock)
    key = await service.ensure_active_key()
    assert key.algorithm is algorithm
    token = await issue_access_token(
        keys,
        settings,
        subject="u",
        session_id="s",
        amr=[AuthMethod.HARDWARE_KEY],
        acr=AssuranceLevel.AAL3,
        clock=clock,
    )
    assert json.loads(unb64(token.split(".")[0]))["alg"] == algorithm.value
    claims = await verify_access_token(token, keys, settings, clock=clock)
    assert claims.acr is AssuranceLevel.AAL3


async def test_no_security_warning_from_the_eddsa_name(service: AccessTokenService) -> None:
    # pytest runs with filterwarnings=error: joserfc's RFC 9864 SecurityWarning would fail here.
    token = await service.issue(subject="u", session_id="s", amr=PWD, acr=AssuranceLevel.AAL1)
    assert await service.verify(token)


_DUMPS = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_AWKWARD = [
    "",
    "plain",
    'q"uote',
    "back\\slash",
    "ctl\x00\x1f\x7f",
    "tab\t\n\r",
    "é€😀",
    "\u2028\u2029",
    "\ud800",
]


def _claims(text: str, **override: object) -> dict[str, object]:
    claims: dict[str, object] = {
        "iss": text,
        "sub": text + "s",
        "aud": text + "a",
        "exp": 1764393600,
        "iat": -1,
        "nbf": 10**30,
        "jti": text,
        "sid": text + "i",
        "amr": [text, "pwd"],
        "acr": text,
    }
    claims.update(override)
    return claims


@pytest.mark.parametrize("text", _AWKWARD)
def test_claims_json_is_the_encoders(text: str) -> None:
    from bastion.identity.tokens.access import claims_json  # noqa: PLC0415

    claims = _claims(text)
    assert claims_json(claims) == _DUMPS(claims)
    assert json.loads(claims_json(claims)) == claims


class _Text(str):
    __slots__ = ()


@pytest.mark.parametrize(
    "override",
    [
        {"sub": _Text("x")},
        {"exp": True},
        {"exp": 1.5},
        {"amr": ("pwd",)},
        {"amr": []},
        {"amr": [AuthMethod.PASSWORD, _Text("otp")]},
        {"acr": AssuranceLevel.AAL2},
        {"aud": ["a", "b"]},
        {"extra": 1},
    ],
)
def test_claims_json_of_other_values_is_the_encoders(override: dict[str, object]) -> None:
    from bastion.identity.tokens.access import claims_json  # noqa: PLC0415

    claims = _claims("t", **override)
    assert claims_json(claims) == _DUMPS(claims)
    reordered = dict(reversed(list(_claims("t").items())))
    assert claims_json(reordered) == _DUMPS(reordered)


async def test_amr_and_acr_given_as_values_or_members_alike(service: AccessTokenService) -> None:
    def payload(token: str) -> dict[str, object]:
        body: dict[str, object] = json.loads(unb64(token.split(".")[1]))
        return {name: body[name] for name in ("amr", "acr")}

    members = await service.issue(
        subject="u",
        session_id="s",
        amr=[AuthMethod.PASSWORD, AuthMethod.OTP],
        acr=AssuranceLevel.AAL2,
    )
    values = await service.issue(
        subject="u",
        session_id="s",
        amr=["pwd", "otp"],  # type: ignore[list-item]
        acr="aal2",  # type: ignore[arg-type]
    )
    assert payload(members) == payload(values) == {"amr": ["pwd", "otp"], "acr": "aal2"}
    with pytest.raises(ValueError, match="is not a valid AuthMethod"):
        await service.issue(subject="u", session_id="s", amr=["nope"], acr=AssuranceLevel.AAL1)  # type: ignore[list-item]
    with pytest.raises(ValueError, match="is not a valid AssuranceLevel"):
        await service.issue(subject="u", session_id="s", amr=PWD, acr="aal9")  # type: ignore[arg-type]
