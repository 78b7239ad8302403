"""Users: random ids, normalised uniqueness, setup completion once an administrator exists."""

from __future__ import annotations

from datetime import UTC
from functools import partial

import pytest
from sqlalchemy import Connection, select
from sqlalchemy.exc import IntegrityError
from tests.unit.identity.conftest import ListRecorder

from bastion.clock import FrozenClock
from bastion.identity.accounts.models import users
from bastion.identity.accounts.users import (
    User,
    find_by_email,
    get_user,
    insert_user,
    read_user_by_email,
)
from bastion.identity.emails import normalize_email
from bastion.identity.setup_token import SetupTokenService
from bastion.storage import Database


async def _insert(database: Database, email: str, *, is_admin: bool = False) -> str:
    async with database.engine.begin() as connection:
        user = await insert_user(
            connection,
            email=email,
            email_normalized=normalize_email(email),
            display_name="Ann",
            password_hash=None,
            now=FrozenClock().now(),
            is_admin=is_admin,
        )
    return user.id


async def test_ids_are_random_and_emails_unique_by_normal_form(database: Database) -> None:
    first = await _insert(database, "Ann@Example.org")
    assert len(first) == 36
    with pytest.raises(IntegrityError):
        await _insert(database, "ann@example.ORG")
    async with database.engine.connect() as connection:
        found = await find_by_email(connection, normalize_email("ANN@example.org"))
        assert found is not None
        assert found.email == "Ann@Example.org"  # kept as given
        assert found.password_hash is None
        assert not found.can_log_in
        assert await get_user(connection, "missing") is None


async def test_setup_is_complete_once_an_administrator_exists(
    database: Database, clock: FrozenClock, recorder: ListRecorder
) -> None:
    service = SetupTokenService(database, clock=clock, ttl_seconds=3600, audit=recorder)
    await _insert(database, "user@example.org")
    assert not await service.is_setup_complete()
    await _insert(database, "admin@example.org", is_admin=True)
    assert await service.is_setup_complete()
    assert await service.ensure_token_for_first_start() is None


async def test_a_user_is_the_same_read_any_way(database: Database) -> None:
    """The prepared read (positional, whole row), the Core read and a row of the same columns
    in another order (by name) give equal users."""
    await _insert(database, "Ann@Example.org")
    email = normalize_email("Ann@Example.org")
    by_core = await database.read(partial(_core_read, email=email))
    prepared = await database.read(partial(read_user_by_email, email_normalized=email))
    assert prepared == by_core
    assert prepared is not None
    assert prepared.email == "Ann@Example.org"
    assert prepared.email_normalized == email
    assert prepared.created_at.tzinfo is UTC
    reordered = select(*reversed(users.c)).where(users.c.email_normalized == email)
    async with database.engine.connect() as connection:
        row = (await connection.execute(reordered)).one()
    assert row._fields != tuple(column.key for column in users.c)
    assert User.of(row) == prepared


def _core_read(connection: Connection, email: str) -> User | None:
    row = connection.execute(select(users).where(users.c.email_normalized == email)).first()
    return User.of(row) if row is not None else None
