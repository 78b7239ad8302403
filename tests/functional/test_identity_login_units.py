"""A password login's database work on an inline SQLite file runs as synchronous units
(``Database.try_read`` for the account, ``Database.try_unit`` for the session): the answers,
sessions and audit events must be those of the ordinary path (``Database.read`` and
``Database.transaction``), which PostgreSQL and every fallback take.

Each case is sent twice, to two fresh accounts of the same state: once as served, once with
both units declined (the ordinary path answers).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, update
from tests.functional.identity_helpers import (
    PASSWORD,
    WRONG_PASSWORD,
    audit_rows,
    client_for,
    comparable,
    create_account,
    identity_settings,
    login_response,
    running_app,
    unique_email,
)

from bastion.config import Settings
from bastion.identity.accounts.models import users
from bastion.identity.sessions.models import sessions as table
from bastion.storage import Database

_EVENTS = ("identity:login:succeeded", "identity:login:failed")


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return identity_settings(tmp_path, database_url=database_url)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    async with running_app(settings) as app:
        yield app


def _database(app: FastAPI) -> Database:
    database: Database = app.state.services.identity.login.database
    return database


async def _count(app: FastAPI, email: str) -> int:
    async with _database(app).engine.connect() as connection:
        query = (
            select(func.count())
            .select_from(table.join(users, users.c.id == table.c.user_id))
            .where(users.c.email == email)
        )
        return int((await connection.execute(query)).scalar_one())


async def _events(app: FastAPI) -> dict[Any, tuple[str, str, str | None, str | None]]:
    """The login events recorded so far, by row id: type, outcome, reason, subject."""
    return {
        row["id"]: (kind, row["outcome"], row["reason"], row["subject"])
        for kind in _EVENTS
        for row in await audit_rows(app, kind)
    }


async def _user_id(app: FastAPI, email: str) -> str | None:
    async with _database(app).engine.connect() as connection:
        query = select(users.c.id).where(users.c.email == email)
        row = (await connection.execute(query)).first()
    return row.id if row is not None else None


@pytest.mark.parametrize("case", ["correct", "wrong_password", "unknown", "disabled"])
async def test_a_login_through_the_units_answers_like_the_ordinary_path(
    app: FastAPI, settings: Settings, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    database = _database(app)
    try_read, try_unit = database.try_read, database.try_unit
    reads: list[Any] = []
    units: list[Any] = []

    def counting_read(work: Any) -> Any:
        reads.append(outcome := try_read(work))
        return outcome

    def counting_unit(work: Any) -> Any:
        outcome = try_unit(work)
        # The audit writer's small batches are units too (h-audit8): only the login's count.
        if not getattr(work, "__module__", "").startswith("bastion.audit."):
            units.append(outcome)
        return outcome

    outcomes = []
    for served in (True, False):
        if served:
            monkeypatch.setattr(database, "try_read", counting_read)
            monkeypatch.setattr(database, "try_unit", counting_unit)
        else:
            monkeypatch.setattr(database, "try_read", lambda _: None)
            monkeypatch.setattr(database, "try_unit", lambda _: None)
        async with client_for(app) as client:
            email = unique_email()
            if case != "unknown":
                await create_account(client, settings, email)
            if case == "disabled":
                async with database.engine.begin() as connection:
                    await connection.execute(
                        update(users).where(users.c.email == email).values(disabled=True)
                    )
            await database.read(lambda _: None)  # the kept connection, made
            before = await _events(app)
            password = WRONG_PASSWORD if case == "wrong_password" else PASSWORD
            response = await login_response(client, email, password)
            status, body, headers = comparable(response)
            if status == 200:
                body = sorted(body)  # fresh tokens: by presence only
            user_id = await _user_id(app, email)
            subject = f"user:{user_id}" if user_id else None
            events = sorted(
                (kind, outcome, reason, who == subject)
                for key, (kind, outcome, reason, who) in (await _events(app)).items()
                if key not in before
            )
            outcomes.append((status, body, sorted(headers), await _count(app, email), events))
    assert outcomes[0] == outcomes[1]
    expected = 200 if case == "correct" else 401
    assert outcomes[0][0] == expected
    assert outcomes[0][3] == (1 if expected == 200 else 0)
    if database.is_sqlite:
        assert len(reads) == 1  # the account read: a unit
        assert reads[0] is not None
        assert units == ([[]] if case == "correct" else [])  # the session: a unit
    else:
        assert reads == [None]
        assert units == ([None] if case == "correct" else [])
