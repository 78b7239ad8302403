"""A password login asks whether the account has a second factor inside the transaction that
starts its session (``MfaService.factor_check``); a factor source that cannot be asked that
way (no ``SyncEnrollment``) still gets asked, before the session, as it always was."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import pytest
from fastapi import FastAPI
from httpx import Response
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from tests.common.passkeys import stored_passkey
from tests.functional.identity_helpers import (
    audit_rows,
    client_for,
    create_account,
    enroll_totp,
    identity_settings,
    login,
    login_response,
    running_app,
)

from bastion.config import Settings
from bastion.identity.accounts.models import users
from bastion.identity.accounts.users import find_by_email
from bastion.identity.emails import normalize_email
from bastion.identity.errors import InvalidCredentials
from bastion.identity.mfa.webauthn.models import webauthn_credentials
from bastion.identity.sessions._statements import login_new_session_unless
from bastion.identity.sessions.login import _HasSecondFactor, _refuse_with_factor
from bastion.identity.sessions.models import sessions as table
from bastion.identity.tokens.claims import AssuranceLevel, AuthMethod


class AsyncOnlySource:
    """A factor source of another module with ``is_enrolled`` only."""

    name = "hardware-token"
    methods: tuple[str, ...] = ("hwk",)

    def __init__(self) -> None:
        self.enrolled: set[str] = set()

    async def is_enrolled(self, connection: AsyncConnection, user_id: str) -> bool:  # noqa: ARG002
        return user_id in self.enrolled

    async def remove_all(self, connection: AsyncConnection, user_id: str) -> int:  # noqa: ARG002
        return 0


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return identity_settings(tmp_path, database_url=database_url)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    async with running_app(settings) as app:
        yield app


async def _session_count(app: FastAPI) -> int:
    sessions = await app.state.services.identity.sessions.database.engine.connect()
    try:
        return int((await sessions.execute(select(func.count()).select_from(table))).scalar_one())
    finally:
        await sessions.close()


async def test_an_account_with_a_factor_gets_a_challenge_and_no_session(
    app: FastAPI, settings: Settings
) -> None:
    mfa = app.state.services.identity.mfa
    assert mfa.factor_check() is not None  # TOTP and passkeys: asked in the transaction
    async with client_for(app) as client:
        account = await create_account(client, settings)
        await enroll_totp(app, client, account)
        before = await _session_count(app)
        response = await login_response(client, account.email, account.password)
        assert response.status_code == 202, response.text
        assert await _session_count(app) == before  # the transaction rolled back


async def test_a_source_without_a_synchronous_check_is_asked_first(
    app: FastAPI, settings: Settings
) -> None:
    mfa = app.state.services.identity.mfa
    source = AsyncOnlySource()
    mfa.register_factor_source(source)
    assert mfa.factor_check() is None
    async with client_for(app) as client:
        plain = await create_account(client, settings)
        held = await create_account(client, settings)
        source.enrolled.add(held_id := await _user_id(app, held.email))
        assert held_id
        response = await login_response(client, plain.email, plain.password)
        assert response.status_code == 200, response.text
        response = await login_response(client, held.email, held.password)
        assert response.status_code == 202, response.text
        assert response.json()["methods"] == ["hwk"]


async def _user_id(app: FastAPI, email: str) -> str:
    async with app.state.services.identity.sessions.database.engine.connect() as connection:
        user = await find_by_email(connection, normalize_email(email))
    assert user is not None
    return user.id


# -- the folded check: the session's INSERT carries the "no second factor" conditions --------
_LOGIN_EVENTS = (
    "identity:login:succeeded",
    "identity:login:failed",
    "identity:mfa:challenge_issued",
)


async def _add_passkey(app: FastAPI, user_id: str) -> None:
    async with app.state.services.identity.sessions.database.engine.begin() as connection:
        await connection.execute(
            webauthn_credentials.insert().values(stored_passkey(user_id, datetime.now(UTC)))
        )


async def _events_of(app: FastAPI, user_id: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for kind in _LOGIN_EVENTS:
        rows = await audit_rows(app, kind)
        found += [(kind, row["outcome"]) for row in rows if row["subject"] == f"user:{user_id}"]
    return sorted(found)


def _shape(response: Response) -> tuple[int, object]:
    body = response.json()
    keys = sorted(body) if isinstance(body, dict) else body
    methods = body.get("methods") if isinstance(body, dict) else None
    return response.status_code, (keys, methods)


@pytest.mark.parametrize("kind", ["plain", "totp", "pending_totp", "passkey"])
async def test_the_folded_check_answers_like_the_check_asked_first(
    app: FastAPI, settings: Settings, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """The same account state logged in through the folded statement (the default) and through
    the check run before the plain INSERT (``factor_conditions`` None): same status, body shape,
    challenge methods, sessions written and audit events."""
    mfa = app.state.services.identity.mfa
    assert mfa.factor_conditions() is not None
    outcomes = []
    for folded in (True, False):
        if not folded:
            monkeypatch.setattr(mfa, "factor_conditions", lambda: None)
        async with client_for(app) as client:
            account = await create_account(client, settings)
            user_id = await _user_id(app, account.email)
            if kind == "totp":
                await enroll_totp(app, client, account)
            elif kind == "pending_totp":
                session = await login(client, account)
                started = await client.post("/v1/account/mfa/totp", headers=session.headers)
                assert started.status_code == 201, started.text
            elif kind == "passkey":
                await _add_passkey(app, user_id)
            before = await _session_count(app)
            response = await login_response(client, account.email, account.password)
            written = await _session_count(app) - before
            outcomes.append((_shape(response), written, await _events_of(app, user_id)))
    assert outcomes[0] == outcomes[1]
    expected = 200 if kind in {"plain", "pending_totp"} else 202
    assert outcomes[0][0][0] == expected
    assert outcomes[0][1] == (1 if expected == 200 else 0)


@pytest.mark.parametrize("with_factor", [False, True])
async def test_an_account_disabled_meanwhile_is_refused_by_the_folded_statement(
    app: FastAPI, settings: Settings, with_factor: bool
) -> None:
    """Disabled between the password check and the session (a race): the folded statement
    inserts nothing, and the check asked then tells a factor (challenge path) from the
    disabled account (``InvalidCredentials``), as the check asked first did; nothing written."""
    identity = app.state.services.identity
    mfa = identity.mfa
    conditions = mfa.factor_conditions()
    check = mfa.factor_check()
    assert conditions is not None
    assert check is not None
    async with client_for(app) as client:
        account = await create_account(client, settings)
        if with_factor:
            await enroll_totp(app, client, account)
    user_id = await _user_id(app, account.email)
    async with identity.sessions.database.engine.begin() as connection:
        await connection.execute(update(users).where(users.c.id == user_id).values(disabled=True))
    before = await _session_count(app)
    errors = []
    for folded in (True, False):
        refuse = partial(_refuse_with_factor, check, user_id)
        options = (
            {"new_session": login_new_session_unless(conditions), "refused": refuse}
            if folded
            else {"precondition": refuse}
        )
        with pytest.raises((InvalidCredentials, _HasSecondFactor)) as caught:
            await identity.sessions.create(
                user_id,
                amr=[AuthMethod.PASSWORD],
                acr=AssuranceLevel.AAL1,
                transport="bearer",
                ip=None,
                user_agent=None,
                **options,
            )
        errors.append(type(caught.value))
    assert errors[0] is errors[1] is (_HasSecondFactor if with_factor else InvalidCredentials)
    assert await _session_count(app) == before
