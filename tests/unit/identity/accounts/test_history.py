"""Password history storage: the last N passwords are the current one and N-1 earlier ones;
replaced hashes beyond that, and all of them with the option off, are deleted (SQLite and
PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from bastion.clock import FrozenClock
from bastion.identity.accounts import history
from bastion.identity.accounts.models import password_history
from bastion.identity.accounts.users import get_user, insert_user
from bastion.storage import Database


async def _user(database: Database, clock: FrozenClock, email: str) -> str:
    async with database.engine.begin() as connection:
        user = await insert_user(
            connection,
            email=email,
            email_normalized=email,
            display_name="Ann",
            password_hash="h0",
            now=clock.now(),
        )
    return user.id


async def _replace(
    database: Database, clock: FrozenClock, user_id: str, new: str, size: int
) -> None:
    clock.advance(timedelta(minutes=1))
    async with database.engine.begin() as connection:
        user = await get_user(connection, user_id)
        assert user is not None
        await history.replace_password(connection, user, new, size, clock.now())


async def _recent(database: Database, user_id: str, size: int) -> list[str]:
    async with database.engine.connect() as connection:
        return await history.recent_hashes(connection, await get_user(connection, user_id), size)


async def _rows(database: Database) -> int:
    async with database.engine.connect() as connection:
        count = await connection.scalar(select(func.count()).select_from(password_history))
    return int(count or 0)


async def test_the_last_n_passwords_newest_first(database: Database, clock: FrozenClock) -> None:
    ann = await _user(database, clock, "ann@example.org")
    bob = await _user(database, clock, "bob@example.org")
    for new in ("h1", "h2", "h3", "h4"):
        await _replace(database, clock, ann, new, size=3)
    await _replace(database, clock, bob, "b1", size=3)
    assert await _recent(database, ann, 3) == ["h4", "h3", "h2"]
    assert await _recent(database, ann, 2) == ["h4", "h3"]
    assert await _recent(database, bob, 3) == ["b1", "h0"]
    # Only N-1 earlier hashes are kept per user: 2 for ann, 1 for bob.
    assert await _rows(database) == 3


async def test_off_keeps_nothing_and_forgets_what_was_kept(
    database: Database, clock: FrozenClock
) -> None:
    ann = await _user(database, clock, "ann@example.org")
    await _replace(database, clock, ann, "h1", size=4)
    await _replace(database, clock, ann, "h2", size=4)
    assert await _rows(database) == 2
    assert await _recent(database, ann, 0) == []
    await _replace(database, clock, ann, "h3", size=0)
    assert await _rows(database) == 0
    # N = 1: only the current password is refused; nothing stored.
    await _replace(database, clock, ann, "h4", size=1)
    assert await _rows(database) == 0
    assert await _recent(database, ann, 1) == ["h4"]


async def test_an_unusable_password_keeps_the_history(
    database: Database, clock: FrozenClock
) -> None:
    ann = await _user(database, clock, "ann@example.org")
    await _replace(database, clock, ann, None, size=3)  # an administrator forced a reset
    assert await _recent(database, ann, 3) == ["h0"]
    await _replace(database, clock, ann, "h1", size=3)
    assert await _recent(database, ann, 3) == ["h1", "h0"]
