"""A password login asks whether the account has a second factor inside the transaction that
starts its session (``MfaService.factor_check``); a factor source that cannot be asked that
way (no ``SyncEnrollment``) still gets asked, before the session, as it always was."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection
from tests.functional.identity_helpers import (
    client_for,
    create_account,
    enroll_totp,
    identity_settings,
    login_response,
    running_app,
)

from bastion.config import Settings
from bastion.identity.accounts.users import find_by_email
from bastion.identity.emails import normalize_email
from bastion.identity.sessions.models import sessions as table


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
