"""Attacks on multi-factor authentication. Each test would fail without the control it names:

- TOTP replay (the conditional UPDATE of ``last_step``), also raced across two app instances
  (two workers) sharing one database;
- online guessing of codes (the failure backoff, per user and per IP);
- login challenges reused, expired, voided by failures, or presented as an access token;
- recovery codes spent twice;
- step-up bypass: stale sessions, another session's re-authentication, a password in place of a
  factor, a wrong password;
- a non-administrator calling the admin MFA reset;
- the TOTP secret at rest (sealed, never in the database in clear).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from tests.functional.identity_helpers import (
    OTHER_PASSWORD,
    Account,
    Login,
    assert_problem,
    audit_rows,
    client_for,
    create_account,
    enroll_totp,
    fresh_client,
    identity_settings,
    jwt_parts,
    login,
    login_response,
    running_app,
    setup_admin,
    unique_email,
)

from bastion.clock import FrozenClock
from bastion.config import Settings
from bastion.identity.mfa import totp
from bastion.identity.mfa.errors import InvalidChallenge
from bastion.identity.mfa.models import mfa_totp

#: The ASGI scope of a call made straight to the service (its audit events' origin).
_SCOPE = {"type": "http", "path": "/v1/sessions/mfa/complete", "headers": []}


@dataclass
class Harness:
    app: FastAPI
    client: httpx.AsyncClient
    settings: Settings
    clock: FrozenClock


@pytest.fixture
async def harness(tmp_path: Path, database_url: str) -> AsyncIterator[Harness]:
    clock = FrozenClock(datetime.now(UTC))
    settings = identity_settings(tmp_path, database_url=database_url)
    async with running_app(settings, clock=clock) as app, client_for(app) as client:
        yield Harness(app, client, settings, clock)


async def _challenge(client: httpx.AsyncClient, account: Account) -> str:
    response = await login_response(client, account.email, account.password)
    assert response.status_code == 202, response.text
    return str(response.json()["challenge_token"])


async def _complete(
    client: httpx.AsyncClient, token: str, code: str, method: str = "otp"
) -> httpx.Response:
    return await client.post(
        "/v1/sessions/mfa/complete",
        json={"challenge_token": token, "method": method, "code": code},
    )


async def _enrolled(h: Harness) -> Account:
    account = await create_account(h.client, h.settings)
    await enroll_totp(h.app, h.client, account)
    return account


def _code(account: Account, offset: int = 0) -> str:
    assert account.totp_secret is not None
    step = totp.time_step(datetime.now(UTC) if account.clock is None else account.clock.now())
    return totp.code_at(account.totp_secret, step + offset)


# -- TOTP replay ------------------------------------------------------------------------------
async def test_an_accepted_totp_code_is_never_accepted_again(harness: Harness) -> None:
    h = harness
    account = await _enrolled(h)  # activation used the step before the current one
    code = _code(account)
    assert (await _complete(h.client, await _challenge(h.client, account), code)).status_code == 200
    replay = await _complete(h.client, await _challenge(h.client, account), code)
    assert_problem(replay, 401, "mfa_code_invalid")
    # An older code still inside the drift window is refused too: steps only move forward.
    older = await _complete(h.client, await _challenge(h.client, account), _code(account, -1))
    assert_problem(older, 401, "mfa_code_invalid")
    reasons = [row["reason"] for row in await audit_rows(h.app, "identity:mfa:failed")]
    assert reasons.count("replayed") == 2


async def test_two_workers_racing_with_one_code_let_one_through(
    tmp_path: Path, database_url: str
) -> None:
    """Two app instances (two workers: nothing shared but the database) get the same code
    at once, on separate challenges: exactly one login succeeds."""
    clock = FrozenClock(datetime.now(UTC))
    settings = identity_settings(tmp_path, database_url=database_url)
    async with (
        running_app(settings, clock=clock) as first,
        running_app(settings, clock=clock) as second,
        client_for(first) as a,
        client_for(second, "203.0.113.8") as b,
    ):
        account = await create_account(a, settings)
        await enroll_totp(first, a, account)
        tokens = [await _challenge(c, account) for c in (a, b, a, b, a, b)]
        code = _code(account)
        answers = await asyncio.gather(
            *(_complete(c, t, code) for c, t in zip((a, b, a, b, a, b), tokens, strict=True))
        )
        statuses = sorted(r.status_code for r in answers)
        assert statuses == [200, 401, 401, 401, 401, 401], [r.text for r in answers]


async def test_a_code_used_for_step_up_cannot_log_in(harness: Harness) -> None:
    h = harness
    account = await _enrolled(h)
    session = await login(h.client, account)  # uses the current step
    h.clock.advance(timedelta(seconds=301))
    code = _code(account)
    stepped = await h.client.post(
        "/v1/sessions/current/step-up",
        json={"method": "otp", "code": code},
        headers=session.headers,
    )
    assert stepped.status_code == 200, stepped.text
    assert_problem(await _complete(h.client, await _challenge(h.client, account), code), 401,
                   "mfa_code_invalid")  # fmt: skip


# -- guessing ---------------------------------------------------------------------------------
async def _guess(h: Harness, account: Account, code: str, method: str = "otp") -> int:
    """One guess from a fresh address: the per-IP limits never answer, only the per-user
    backoff can (an attacker spreading guesses over many addresses)."""
    async with fresh_client(h.app) as client:
        token = await _challenge(client, account)
        return (await _complete(client, token, code, method)).status_code


async def test_guessing_codes_hits_the_backoff(harness: Harness) -> None:
    h = harness
    account = await _enrolled(h)
    statuses = [await _guess(h, account, f"{guess:06d}") for guess in range(12)]
    assert 200 not in statuses
    assert statuses[:3] == [401, 401, 401]  # three free mistakes (honest typos)
    assert 429 in statuses
    # While the wait is in force even the right code is refused: the backoff, not luck.
    async with fresh_client(h.app) as client:
        blocked = await _complete(client, await _challenge(client, account), _code(account))
    assert_problem(blocked, 429, "too_many_attempts")
    assert int(blocked.headers["retry-after"]) >= 1
    assert await audit_rows(h.app, "identity:mfa:throttled")
    # The wait is bounded: later, the real user gets in.
    h.clock.advance(timedelta(minutes=16))
    assert await _guess(h, account, _code(account)) == 200


async def test_guessing_on_one_challenge_voids_it(harness: Harness) -> None:
    h = harness
    account = await _enrolled(h)
    token = await _challenge(h.client, account)
    for _ in range(5):
        h.clock.advance(timedelta(seconds=61))  # outlast each backoff wait
        assert (await _complete(h.client, token, "000000")).status_code in {401, 429}
    h.clock.advance(timedelta(minutes=16))
    assert_problem(await _complete(h.client, token, _code(account)), 401, "mfa_challenge_invalid")


async def test_guessing_recovery_codes_hits_the_backoff(harness: Harness) -> None:
    h = harness
    account = await _enrolled(h)
    wrong = "AAAAA-AAAAA-AAAAA-AAAAA"
    statuses = [await _guess(h, account, wrong, "recovery") for _ in range(6)]
    assert 200 not in statuses
    assert 429 in statuses


# -- challenges -------------------------------------------------------------------------------
async def test_a_challenge_works_once(harness: Harness) -> None:
    h = harness
    account = await _enrolled(h)
    token = await _challenge(h.client, account)
    assert (await _complete(h.client, token, _code(account))).status_code == 200
    reuse = await _complete(h.client, token, _code(account, 1))
    assert_problem(reuse, 401, "mfa_challenge_invalid")


async def test_a_peeked_challenge_completes_only_its_own_token(harness: Harness) -> None:
    """``complete_challenge(token, pending=...)`` (the routes pass the challenge they peeked,
    sparing a second read): a ``pending`` of another challenge proves nothing for ``token``'s
    login. Without the check, Mallory's code and challenge would consume Ann's challenge and
    log Mallory in; both challenges stay usable instead."""
    h = harness
    mfa = h.app.state.services.identity.mfa
    ann, mallory = await _enrolled(h), await _enrolled(h)
    anns, mallorys = await _challenge(h.client, ann), await _challenge(h.client, mallory)
    pending = await mfa.peek_challenge(mallorys)
    with pytest.raises(InvalidChallenge):
        await mfa.complete_challenge(
            anns, "otp", code=_code(mallory), scope=_SCOPE, pending=pending
        )
    assert (await _complete(h.client, mallorys, _code(mallory))).status_code == 200
    assert (await _complete(h.client, anns, _code(ann))).status_code == 200


async def test_a_challenge_expires(harness: Harness) -> None:
    h = harness
    account = await _enrolled(h)
    token = await _challenge(h.client, account)
    h.clock.advance(timedelta(seconds=301))
    assert_problem(await _complete(h.client, token, _code(account)), 401, "mfa_challenge_invalid")


async def test_a_challenge_is_not_an_access_token(harness: Harness) -> None:
    h = harness
    account = await _enrolled(h)
    token = await _challenge(h.client, account)
    for method, path in [("GET", "/v1/account"), ("GET", "/v1/sessions"),
                         ("GET", "/v1/account/mfa")]:  # fmt: skip
        response = await h.client.request(
            method, path, headers={"Authorization": f"Bearer {token}"}
        )
        assert_problem(response, 401, "invalid_token")
    refresh = await h.client.post("/v1/sessions/refresh", json={"refresh_token": token})
    assert refresh.status_code in {401, 422}
    # ... and it still works for its one purpose afterwards.
    assert (await _complete(h.client, token, _code(account))).status_code == 200


async def test_other_tokens_are_not_challenges(harness: Harness) -> None:
    h = harness
    account = await _enrolled(h)
    session = await login(h.client, account)
    for fake in (session.access_token, session.refresh_token, "bst_mfa_" + "A" * 43):
        response = await _complete(h.client, fake, _code(account, 1))
        assert response.status_code in {401, 422}, response.text
        if response.status_code == 401:
            assert response.json()["code"] == "mfa_challenge_invalid"


async def test_a_password_login_without_the_factor_gets_no_session(harness: Harness) -> None:
    h = harness
    account = await _enrolled(h)
    before = await audit_rows(h.app, "identity:login:succeeded")
    response = await login_response(h.client, account.email, account.password)
    assert response.status_code == 202
    assert set(response.json()) == {"mfa_required", "challenge_token", "expires_in", "methods"}
    assert "set-cookie" not in response.headers
    assert len(await audit_rows(h.app, "identity:login:succeeded")) == len(before)


# -- recovery codes ---------------------------------------------------------------------------
async def test_a_recovery_code_works_once(harness: Harness) -> None:
    h = harness
    account = await _enrolled(h)
    code = account.recovery_codes[0]
    first = await _complete(h.client, await _challenge(h.client, account), code, "recovery")
    assert first.status_code == 200, first.text
    again = await _complete(h.client, await _challenge(h.client, account), code, "recovery")
    assert_problem(again, 401, "mfa_code_invalid")


async def test_another_users_recovery_code_is_refused(harness: Harness) -> None:
    h = harness
    victim, attacker = await _enrolled(h), await _enrolled(h)
    token = await _challenge(h.client, victim)
    stolen = attacker.recovery_codes[0]
    assert_problem(await _complete(h.client, token, stolen, "recovery"), 401, "mfa_code_invalid")


async def test_racing_one_recovery_code_lets_one_through(harness: Harness) -> None:
    h = harness
    account = await _enrolled(h)
    code = account.recovery_codes[0]
    tokens = [await _challenge(h.client, account) for _ in range(4)]
    answers = await asyncio.gather(*(_complete(h.client, t, code, "recovery") for t in tokens))
    assert sorted(r.status_code for r in answers) == [200, 401, 401, 401]


# -- step-up ----------------------------------------------------------------------------------
async def _stale(h: Harness) -> tuple[Account, Login]:
    account = await _enrolled(h)
    session = await login(h.client, account)
    h.clock.advance(timedelta(seconds=301))
    return account, session


SENSITIVE = [
    (
        "POST",
        "/v1/account/password",
        {"current_password": "x" * 12, "new_password": OTHER_PASSWORD},
    ),
    ("POST", "/v1/account/email", {"new_email": "new@example.com", "current_password": "x" * 12}),
    ("POST", "/v1/account/mfa/totp", None),
    ("DELETE", "/v1/account/mfa/totp", None),
    ("POST", "/v1/account/mfa/recovery-codes", None),
]


async def test_a_stale_session_cannot_do_sensitive_operations(harness: Harness) -> None:
    h = harness
    account, session = await _stale(h)
    for method, path, body in SENSITIVE:
        response = await h.client.request(method, path, json=body, headers=session.headers)
        assert_problem(response, 401, "step_up_required")
    # Nothing changed: the factor and the password are as they were.
    status = (await h.client.get("/v1/account/mfa", headers=session.headers)).json()
    assert status["totp"] == "active"
    assert status["recovery_codes_remaining"] == 10
    assert (await login_response(h.client, account.email, account.password)).status_code == 202


async def test_step_up_of_one_session_does_not_serve_another(harness: Harness) -> None:
    h = harness
    account, stale = await _stale(h)
    other = await login(h.client, account)  # fresh, aal2
    assert (await h.client.post("/v1/account/mfa/recovery-codes",
                                headers=other.headers)).status_code == 200  # fmt: skip
    response = await h.client.post("/v1/account/mfa/recovery-codes", headers=stale.headers)
    assert_problem(response, 401, "step_up_required")


async def test_a_password_does_not_replace_the_factor_in_step_up(harness: Harness) -> None:
    h = harness
    account, session = await _stale(h)
    response = await h.client.post(
        "/v1/sessions/current/step-up",
        json={"password": account.password},
        headers=session.headers,
    )
    assert_problem(response, 401, "step_up_required")
    wrong = await h.client.post(
        "/v1/sessions/current/step-up",
        json={"method": "otp", "code": "000000"},
        headers=session.headers,
    )
    assert_problem(wrong, 401, "mfa_code_invalid")
    still = await h.client.post("/v1/account/mfa/recovery-codes", headers=session.headers)
    assert_problem(still, 401, "step_up_required")


async def test_a_wrong_password_does_not_step_up(harness: Harness) -> None:
    h = harness
    account = await create_account(h.client, h.settings)
    session = await login(h.client, account)
    h.clock.advance(timedelta(seconds=301))
    wrong = await h.client.post(
        "/v1/sessions/current/step-up",
        json={"password": OTHER_PASSWORD},
        headers=session.headers,
    )
    assert_problem(wrong, 401, "invalid_credentials")
    body = {"current_password": account.password, "new_password": OTHER_PASSWORD}
    response = await h.client.post("/v1/account/password", json=body, headers=session.headers)
    assert_problem(response, 401, "step_up_required")


async def test_admin_operations_need_step_up(harness: Harness) -> None:
    h = harness
    admin_account = await setup_admin(h.app, h.client)
    admin = await login(h.client, admin_account)
    h.clock.advance(timedelta(seconds=301))
    for method, path in [("GET", "/v1/admin/users"), ("POST", "/v1/admin/users/x/disable")]:
        response = await h.client.request(method, path, headers=admin.headers)
        problem = assert_problem(response, 401, "step_up_required")
        assert problem["acr_values"] == "aal2"


# -- admin reset ------------------------------------------------------------------------------
async def test_a_non_admin_cannot_reset_anyones_mfa(harness: Harness) -> None:
    h = harness
    await setup_admin(h.app, h.client)
    victim = await _enrolled(h)
    attacker = await _enrolled(h)
    victim_session = await login(h.client, victim)
    victim_id = jwt_parts(victim_session.access_token)[1]["sub"]
    attacker_session = await login(h.client, attacker)  # fresh and aal2: step-up is not the bar
    response = await h.client.post(
        f"/v1/admin/users/{victim_id}/mfa/reset", headers=attacker_session.headers
    )
    assert_problem(response, 403, "forbidden")
    anonymous = await h.client.post(f"/v1/admin/users/{victim_id}/mfa/reset")
    assert_problem(anonymous, 401, "not_authenticated")
    status = (await h.client.get("/v1/account/mfa", headers=victim_session.headers)).json()
    assert status["totp"] == "active"
    assert (await login_response(h.client, victim.email, victim.password)).status_code == 202


async def test_an_admin_reset_needs_step_up(harness: Harness) -> None:
    h = harness
    admin = await login(h.client, await setup_admin(h.app, h.client))
    victim = await _enrolled(h)
    victim_id = jwt_parts((await login(h.client, victim)).access_token)[1]["sub"]
    h.clock.advance(timedelta(seconds=301))
    response = await h.client.post(f"/v1/admin/users/{victim_id}/mfa/reset", headers=admin.headers)
    assert_problem(response, 401, "step_up_required")
    assert (await login_response(h.client, victim.email, victim.password)).status_code == 202


# -- at rest ----------------------------------------------------------------------------------
async def test_the_totp_secret_is_sealed_at_rest(harness: Harness) -> None:
    h = harness
    account = await _enrolled(h)
    assert account.totp_secret is not None
    async with h.app.state.services.database.engine.connect() as connection:
        rows = (await connection.execute(select(mfa_totp))).all()
    assert rows
    for row in rows:
        assert account.totp_secret not in str(tuple(row))
    # A sealed secret moved to another user's row does not decrypt there (bound to the row).
    other = await create_account(h.client, h.settings, unique_email())
    session = await login(h.client, other)
    started = await h.client.post("/v1/account/mfa/totp", headers=session.headers)
    assert started.status_code == 201
    async with h.app.state.services.database.engine.begin() as connection:
        own = next(r for r in rows if r.activated_at is not None)
        other_id = jwt_parts(session.access_token)[1]["sub"]
        await connection.execute(
            mfa_totp.update()
            .where(mfa_totp.c.user_id == other_id)
            .values(secret_sealed=own.secret_sealed)
        )
    stolen = totp.code_at(account.totp_secret, totp.time_step(h.clock.now()) + 1)
    response = await h.client.post(
        "/v1/account/mfa/totp/activate", json={"code": stolen}, headers=session.headers
    )
    assert_problem(response, 401, "mfa_code_invalid")
