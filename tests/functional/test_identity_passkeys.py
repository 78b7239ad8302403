"""Passkeys through the real app and HTTP API (no browser): a software authenticator registers
a passkey, completes a password login's MFA challenge with it, and logs in without a password;
attacks get the documented problem+json answers. The browser test is tests/browser."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from tests.common.passkeys import SoftwareAuthenticator, b64url
from tests.functional.identity_helpers import (
    Account,
    Login,
    as_login,
    assert_problem,
    audit_rows,
    client_for,
    create_account,
    identity_settings,
    jwt_parts,
    login,
    running_app,
    setup_admin,
)

from bastion.clock import FrozenClock
from bastion.config import Settings
from bastion.identity.mfa.webauthn.settings import WebAuthnSettings
from bastion.identity.tokens import AccessTokenSettings
from bastion.protections.ratelimit.settings import RateLimitSettings

ORIGIN = "http://localhost:8000"
ACCOUNT = "/v1/account/mfa/webauthn"


def passkey_settings(tmp_path: Path) -> Settings:
    return identity_settings(
        tmp_path,
        webauthn=WebAuthnSettings(rp_id="localhost", origins=[ORIGIN]),
        # Long access tokens: the step-up test moves the clock past the step-up window.
        access_tokens=AccessTokenSettings(ttl_seconds=3600),
        # These tests make more MFA requests from one address than the default 10 / 15 min.
        ratelimit=RateLimitSettings(policies={"mfa": {"limit": 1000}}),
    )


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
async def app(tmp_path: Path, clock: FrozenClock) -> AsyncIterator[FastAPI]:
    async with running_app(passkey_settings(tmp_path), clock=clock) as application:
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app) as c:
        yield c


@pytest.fixture
def settings(app: FastAPI) -> Settings:
    return app.state.services.settings  # type: ignore[no-any-return]


def claims(access_token: str) -> dict[str, Any]:
    return jwt_parts(access_token)[1]


async def register_passkey(
    client: httpx.AsyncClient,
    session: Login,
    device: SoftwareAuthenticator,
    name: str | None = "Laptop",
) -> dict[str, Any]:
    begun = await client.post(f"{ACCOUNT}/registrations", headers=session.headers)
    assert begun.status_code == 200, begun.text
    body = begun.json()
    assert body["expires_in"] == 300
    finished = await client.post(
        f"{ACCOUNT}/registrations/finish",
        headers=session.headers,
        json={
            "ceremony": body["ceremony"],
            "credential": device.create(body["publicKey"]),
            "name": name,
        },
    )
    assert finished.status_code == 201, finished.text
    return dict(finished.json())


async def passkey_login(
    client: httpx.AsyncClient, device: SoftwareAuthenticator, **answer: Any
) -> tuple[httpx.Response, dict[str, Any]]:
    begun = await client.post("/v1/sessions/webauthn/begin")
    assert begun.status_code == 200, begun.text
    body = {
        "ceremony": begun.json()["ceremony"],
        "credential": device.get(begun.json()["publicKey"], **answer),
    }
    return await client.post("/v1/sessions/webauthn/finish", json=body), body


async def account_with_passkey(
    client: httpx.AsyncClient, settings: Settings
) -> tuple[Account, SoftwareAuthenticator, dict[str, Any]]:
    account = await create_account(client, settings)
    device = SoftwareAuthenticator(origin=ORIGIN)
    passkey = await register_passkey(client, await login(client, account), device)
    return account, device, passkey


async def test_register_then_log_in_with_a_passkey(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    account = await create_account(client, settings)
    session = await login(client, account)
    listed = await client.get(f"{ACCOUNT}/credentials", headers=session.headers)
    assert listed.json() == {"passkeys": []}
    device = SoftwareAuthenticator(origin=ORIGIN)
    passkey = await register_passkey(client, session, device)
    assert (passkey["name"], passkey["kind"], passkey["last_used_at"]) == ("Laptop", "hwk", None)

    response, replay = await passkey_login(client, device)
    assert response.status_code == 200, response.text
    token = claims(as_login(response).access_token)
    assert (token["amr"], token["acr"]) == (["hwk", "mfa"], "aal2")
    sessions = await client.get("/v1/sessions", headers=as_login(response).headers)
    assert [s["amr"] for s in sessions.json()["sessions"] if s["current"]] == [["hwk", "mfa"]]

    # The same response again: the challenge was single use.
    again = await client.post("/v1/sessions/webauthn/finish", json=replay)
    assert_problem(again, 400, "webauthn_ceremony_invalid")

    listed = await client.get(f"{ACCOUNT}/credentials", headers=session.headers)
    assert listed.json()["passkeys"][0]["last_used_at"] is not None
    assert len(await audit_rows(app, "identity:webauthn:registered")) == 1
    used = await audit_rows(app, "identity:webauthn:used")
    assert [row["details"]["purpose"] for row in used] == ["login"]
    failed = await audit_rows(app, "identity:webauthn:failed")
    assert [row["reason"] for row in failed] == ["ceremony_unknown"]


async def test_a_passkey_completes_a_password_logins_challenge(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    account, device, _ = await account_with_passkey(client, settings)
    first = await client.post(
        "/v1/sessions", json={"email": account.email, "password": account.password}
    )
    assert first.status_code == 202, first.text
    challenge = first.json()
    assert {"hwk", "swk"} <= set(challenge["methods"])
    token = challenge["challenge_token"]

    begun = await client.post("/v1/sessions/mfa/webauthn/begin", json={"challenge_token": token})
    assert begun.status_code == 200, begun.text
    options = begun.json()["publicKey"]
    assert [c["id"] for c in options["allowCredentials"]] == [
        b64url(device.credentials[0].credential_id)
    ]
    finish = {
        "challenge_token": token,
        "ceremony": begun.json()["ceremony"],
        "credential": device.get(options),
    }
    done = await client.post("/v1/sessions/mfa/webauthn/finish", json=finish)
    assert done.status_code == 200, done.text
    token_claims = claims(as_login(done).access_token)
    assert (token_claims["amr"], token_claims["acr"]) == (["pwd", "hwk", "mfa"], "aal2")
    # Both the login challenge and the ceremony were used up.
    again = await client.post("/v1/sessions/mfa/webauthn/finish", json=finish)
    assert again.status_code == 401, again.text
    assert again.json()["code"] == "mfa_challenge_invalid"


async def test_another_accounts_passkey_does_not_complete_my_challenge(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    victim, _, _ = await account_with_passkey(client, settings)
    _, attacker_device, _ = await account_with_passkey(client, settings)
    first = await client.post(
        "/v1/sessions", json={"email": victim.email, "password": victim.password}
    )
    token = first.json()["challenge_token"]
    begun = await client.post("/v1/sessions/mfa/webauthn/begin", json={"challenge_token": token})
    forged = attacker_device.get(begun.json()["publicKey"] | {"allowCredentials": []})
    done = await client.post(
        "/v1/sessions/mfa/webauthn/finish",
        json={"challenge_token": token, "ceremony": begun.json()["ceremony"], "credential": forged},
    )
    assert_problem(done, 401, "webauthn_assertion_rejected")
    failed = await audit_rows(app, "identity:webauthn:failed")
    assert [row["reason"] for row in failed] == ["credential_of_another_user"]
    assert await audit_rows(app, "identity:mfa:failed")  # counted as a failed second factor


async def test_phishing_origins_and_tampering_are_refused(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    account = await create_account(client, settings)
    session = await login(client, account)
    begun = (await client.post(f"{ACCOUNT}/registrations", headers=session.headers)).json()
    phished = SoftwareAuthenticator(origin="https://bastion.example.evil")
    refused = await client.post(
        f"{ACCOUNT}/registrations/finish",
        headers=session.headers,
        json={"ceremony": begun["ceremony"], "credential": phished.create(begun["publicKey"])},
    )
    assert_problem(refused, 400, "webauthn_registration_rejected")

    device = SoftwareAuthenticator(origin=ORIGIN)
    await register_passkey(client, session, device)
    assert (await passkey_login(client, device))[0].status_code == 200  # the counter is now 1
    for change in (
        {"origin": "https://bastion.example.evil"},
        {"rp_id": "evil.example"},
        {"tamper_client_data": True},
        {"sign_count": 0},  # the counter went back: a cloned authenticator
    ):
        response, _ = await passkey_login(client, device, **change)
        problem = assert_problem(response, 401, "webauthn_assertion_rejected")
        assert "origin" not in problem["detail"]  # one opaque answer; the reason is audited
        assert response.headers["www-authenticate"] == 'Bearer realm="bastion"'
    reasons = [row["reason"] for row in await audit_rows(app, "identity:webauthn:failed")]
    assert reasons == [
        "origin_mismatch",
        "origin_mismatch",
        "rp_id_mismatch",
        "bad_signature",
        "sign_count_regressed",
    ]
    assert len(await audit_rows(app, "identity:webauthn:sign_count_regressed")) == 1


async def test_a_passwordless_login_needs_user_verification(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    account = await create_account(client, settings)
    device = SoftwareAuthenticator(origin=ORIGIN, user_verified=False)
    await register_passkey(client, await login(client, account), device)
    response, _ = await passkey_login(client, device)
    assert_problem(response, 401, "webauthn_user_verification_required")


async def test_manage_passkeys_and_other_accounts_are_out_of_reach(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    _, device, passkey = await account_with_passkey(client, settings)
    owner = as_login((await passkey_login(client, device))[0])  # aal2, just now: step-up passes
    _, stranger_device, _ = await account_with_passkey(client, settings)
    stranger = as_login((await passkey_login(client, stranger_device))[0])
    item = f"{ACCOUNT}/credentials/{passkey['id']}"

    renamed = await client.patch(item, headers=owner.headers, json={"name": " Work laptop "})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["name"] == "Work laptop"
    for bad in ({"name": ""}, {"name": "x" * 65}, {"name": "a\x00b"}, {"name": "n", "kind": "swk"}):
        response = await client.patch(item, headers=owner.headers, json=bad)
        assert_problem(response, 422, "validation_failed")

    # Another account's passkey: the same 404 as a passkey that does not exist (IDOR).
    for response in (
        await client.patch(item, headers=stranger.headers, json={"name": "mine"}),
        await client.delete(item, headers=stranger.headers),
        await client.delete(f"{ACCOUNT}/credentials/nope", headers=owner.headers),
    ):
        assert_problem(response, 404, "not_found")

    deleted = await client.delete(item, headers=owner.headers)
    assert deleted.status_code == 204, deleted.text
    listed = await client.get(f"{ACCOUNT}/credentials", headers=owner.headers)
    assert listed.json() == {"passkeys": []}
    response, _ = await passkey_login(client, device)
    assert_problem(response, 401, "webauthn_assertion_rejected")
    deletions = await audit_rows(app, "identity:webauthn:deleted")
    assert [row["details"]["webauthn_id"] for row in deletions] == [passkey["id"]]


async def test_changing_passkeys_needs_a_recent_strong_authentication(
    client: httpx.AsyncClient, settings: Settings, clock: FrozenClock
) -> None:
    account, device, passkey = await account_with_passkey(client, settings)
    # A password session: once the account has a passkey, sensitive routes need aal2.
    first = await client.post(
        "/v1/sessions", json={"email": account.email, "password": account.password}
    )
    assert first.status_code == 202  # the passkey made it an MFA account
    owner = as_login((await passkey_login(client, device))[0])
    clock.advance(timedelta(minutes=6))  # past the 5-minute step-up window
    item = f"{ACCOUNT}/credentials/{passkey['id']}"
    for response in (
        await client.delete(item, headers=owner.headers),
        await client.patch(item, headers=owner.headers, json={"name": "x"}),
        await client.post(f"{ACCOUNT}/registrations", headers=owner.headers),
    ):
        problem = assert_problem(response, 401, "step_up_required")
        assert problem["acr_values"] == "aal2", problem

    begun = await client.post("/v1/sessions/current/step-up/webauthn/begin", headers=owner.headers)
    assert begun.status_code == 200, begun.text
    stepped = await client.post(
        "/v1/sessions/current/step-up/webauthn/finish",
        headers=owner.headers,
        json={
            "ceremony": begun.json()["ceremony"],
            "credential": device.get(begun.json()["publicKey"]),
        },
    )
    assert stepped.status_code == 200, stepped.text
    assert stepped.json()["acr"] == "aal2"
    assert "hwk" in stepped.json()["amr"]
    deleted = await client.delete(item, headers=owner.headers)
    assert deleted.status_code == 204, deleted.text


async def test_malformed_credentials_are_422_not_500(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    _, device, _ = await account_with_passkey(client, settings)
    begun = (await client.post("/v1/sessions/webauthn/begin")).json()
    good = device.get(begun["publicKey"])
    bad_credentials: list[Any] = [
        None,
        "a string",
        {**good, "type": "password"},
        {**good, "rawId": "not base64url!"},
        {**good, "id": "A" * 2000},
        {**good, "response": {**good["response"], "signature": "A" * 5000}},
        {**good, "response": {**good["response"], "extra": 1}},
        {**good, "response": {"clientDataJSON": good["response"]["clientDataJSON"]}},
    ]
    for credential in bad_credentials:
        response = await client.post(
            "/v1/sessions/webauthn/finish",
            json={"ceremony": begun["ceremony"], "credential": credential},
        )
        assert_problem(response, 422, "validation_failed")
    # Well-formed JSON whose binary content is garbage: a clean 401, never a 500.
    garbage = {**good, "response": {**good["response"], "authenticatorData": "AAAA"}}
    response = await client.post(
        "/v1/sessions/webauthn/finish", json={"ceremony": begun["ceremony"], "credential": garbage}
    )
    assert_problem(response, 401, "webauthn_assertion_rejected")


async def test_the_passkeys_page_has_a_strict_policy(client: httpx.AsyncClient) -> None:
    page = await client.get("/passkeys")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp
    assert "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert "unsafe-eval" not in csp
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert "<script>" not in page.text  # no inline script
    assert not re.search(r"\son[a-z]+\s*=", page.text)  # no inline event handlers

    script = await client.get("/passkeys/passkeys.js")
    assert script.status_code == 200
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    digest = base64.b64encode(hashlib.sha384(script.content).digest()).decode()
    assert f'integrity="sha384-{digest}"' in page.text
    # The API's own answers keep the default, script-less policy.
    api = await client.get("/healthz")
    assert api.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"


async def test_a_cookie_mode_passkey_login_refuses_other_sites(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    _, device, _ = await account_with_passkey(client, settings)
    begun = (await client.post("/v1/sessions/webauthn/begin")).json()
    body = {
        "ceremony": begun["ceremony"],
        "credential": device.get(begun["publicKey"]),
        "transport": "cookie",
    }
    # Login CSRF: another site posting its own assertion from the victim's browser, to log the
    # victim into the attacker's account. Refused before the ceremony is touched.
    foreign = await client.post(
        "/v1/sessions/webauthn/finish", json=body, headers={"Origin": "https://evil.example"}
    )
    assert_problem(foreign, 403, "csrf_failed")
    own = await client.post(
        "/v1/sessions/webauthn/finish", json=body, headers={"Origin": "http://testserver"}
    )
    assert own.status_code == 200, own.text
    assert "access_token" not in own.json()  # cookie mode: tokens only in cookies
    assert own.json()["csrf_token"]
    cookies = " ".join(own.headers.get_list("set-cookie"))
    assert "__Host-access=" in cookies
    assert "HttpOnly" in cookies


async def test_an_administrator_enrolls_with_a_passkey_and_resets_a_users(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    # An administrator without a factor may only enroll one: a passkey does.
    admin = await setup_admin(app, client, enroll_mfa=False)
    password_session = await login(client, admin)
    blocked = await client.get("/v1/admin/users", headers=password_session.headers)
    assert_problem(blocked, 403, "mfa_enrollment_required")
    admin_device = SoftwareAuthenticator(origin=ORIGIN)
    await register_passkey(client, password_session, admin_device)
    admin_session = as_login((await passkey_login(client, admin_device))[0])
    assert (await client.get("/v1/admin/users", headers=admin_session.headers)).status_code == 200

    # The MFA reset of a user removes their passkeys (the factor source seam).
    user, device, _ = await account_with_passkey(client, settings)
    user_id = claims(as_login((await passkey_login(client, device))[0]).access_token)["sub"]
    reset = await client.post(f"/v1/admin/users/{user_id}/mfa/reset", headers=admin_session.headers)
    assert reset.status_code == 204, reset.text
    response, _ = await passkey_login(client, device)
    assert_problem(response, 401, "webauthn_assertion_rejected")
    relogin = await client.post(
        "/v1/sessions", json={"email": user.email, "password": user.password}
    )
    assert relogin.status_code == 200, relogin.text  # no second factor left
