"""PreparedStatement: the rows, transaction and errors of ``connection.execute``, on the
driver's cursor (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import (
    Column,
    Connection,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from bastion.identity.accounts.models import users
from bastion.identity.accounts.users import USER_BY_ID, User, insert_user, read_user
from bastion.identity.sessions.models import sessions
from bastion.storage import Database
from bastion.storage.prepared import PreparedStatement

NOW = datetime(2026, 11, 29, 1, 2, 3, 456789, tzinfo=UTC)
SESSION_BY_ID = select(sessions).where(sessions.c.id == bindparam("sid"))
RENAME = (
    update(users)
    .where(users.c.id == bindparam("uid"))
    .values(display_name=bindparam("name"))
    .returning(users.c.id, users.c.display_name, users.c.updated_at)
)


async def _user(database: Database, email: str = "ada@example.com") -> User:
    async with database.engine.begin() as connection:
        return await insert_user(
            connection,
            email=email,
            email_normalized=email,
            display_name="Ada",
            password_hash=None,
            now=NOW,
            email_verified=True,
        )


async def _session(database: Database, user_id: str) -> None:
    row = {
        "id": "s-1",
        "user_id": user_id,
        "created_at": NOW,
        "last_seen_at": NOW,
        "absolute_expires_at": NOW + timedelta(days=1),
        "ip": None,
        "user_agent": "agent",
        "amr": ["pwd", "otp"],
        "acr": "aal2",
        "transport": "bearer",
    }
    async with database.engine.begin() as connection:
        await connection.execute(insert(sessions).values(**row))


def _both(statement: Any, values: dict[str, Any]) -> Any:
    prepared = PreparedStatement(statement)

    def work(connection: Connection) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        mine = [tuple(row) for row in prepared.execute(connection, values)]
        theirs = [tuple(row) for row in connection.execute(statement, values)]
        return mine, theirs

    return work


async def test_rows_are_sqlalchemys_with_every_column_type(database: Database) -> None:
    user = await _user(database)
    await _session(database, user.id)
    mine, theirs = await database.read(_both(USER_BY_ID, {"uid": user.id}))
    assert mine == theirs
    assert len(mine) == 1
    assert await database.read(lambda c: read_user(c, user.id)) == user
    mine, theirs = await database.read(_both(SESSION_BY_ID, {"sid": "s-1"}))
    assert mine == theirs
    assert len(mine) == 1
    prepared = PreparedStatement(SESSION_BY_ID)
    (row,) = await database.read(lambda c: prepared.execute(c, {"sid": "s-1"}))
    assert row.amr == ["pwd", "otp"]
    assert row.created_at == NOW
    assert row.created_at.tzinfo is UTC
    assert await database.read(lambda c: read_user(c, "nobody")) is None


async def test_a_write_joins_the_transaction(database: Database) -> None:
    user = await _user(database)
    rename = PreparedStatement(RENAME)

    def rename_then_fail(connection: Connection) -> None:
        (row,) = rename.execute(connection, {"uid": user.id, "name": "Grace"})
        assert row.display_name == "Grace"
        raise RuntimeError("abort")

    with pytest.raises(RuntimeError):
        await database.transaction(rename_then_fail)
    assert (await database.read(lambda c: read_user(c, user.id))) == user  # rolled back
    await database.transaction(lambda c: rename.execute(c, {"uid": user.id, "name": "Grace"}))
    renamed = await database.read(lambda c: read_user(c, user.id))
    assert renamed is not None
    assert renamed.display_name == "Grace"


async def test_errors_are_sqlalchemys_with_parameters_hidden(database: Database) -> None:
    first = await _user(database)
    second = await _user(database, "grace@example.com")
    clash = PreparedStatement(
        update(users)
        .where(users.c.id == bindparam("uid"))
        .values(email_normalized=bindparam("taken"))
    )
    with pytest.raises(IntegrityError) as caught:
        await database.transaction(
            lambda c: clash.execute(c, {"uid": second.id, "taken": first.email_normalized})
        )
    assert first.email_normalized not in str(caught.value)
    assert "hidden" in str(caught.value)


def test_statements_needing_execution_time_work_are_refused() -> None:
    table = Table(
        "t",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("name", String(10), default="x"),
    )
    from sqlalchemy.dialects import sqlite  # noqa: PLC0415

    dialect = sqlite.dialect()
    with pytest.raises(ValueError, match="execution-time"):
        PreparedStatement(insert(table).values(id=bindparam("i")))._form(dialect)
    expanding = select(table).where(table.c.id.in_(bindparam("ids", expanding=True)))
    with pytest.raises(ValueError, match="execution-time"):
        PreparedStatement(expanding)._form(dialect)


@pytest.mark.parametrize(
    "value",
    [
        NOW,
        datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),  # no microseconds: still six digits
        datetime(999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),  # a three-digit year
        datetime(2026, 3, 29, 2, 30, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        datetime(9999, 12, 31, 18, 0, tzinfo=timezone(timedelta(hours=-5))),
        datetime(2026, 6, 1, 0, 0, 0, 1, tzinfo=timezone(timedelta(0), "Z")),  # not UTC itself
        datetime(2026, 10, 25, 2, 30, 7, 10, tzinfo=ZoneInfo("Europe/Paris")),
        datetime(1, 1, 1, 12, 0, tzinfo=UTC),
        None,
    ],
)
def test_sqlite_utc_datetime_binds_are_sqlalchemys(value: datetime | None) -> None:
    from sqlalchemy.dialects import sqlite  # noqa: PLC0415

    from bastion.storage.columns import UTCDateTime  # noqa: PLC0415
    from bastion.storage.prepared import _bind_processor  # noqa: PLC0415

    dialect = sqlite.dialect()
    kind = UTCDateTime()
    fast = _bind_processor(kind, dialect)
    assert fast is not kind.dialect_impl(dialect).bind_processor(dialect)
    reference = kind.dialect_impl(dialect).bind_processor(dialect)
    assert fast is not None
    assert reference is not None
    assert fast(value) == reference(value)


def test_sqlite_utc_datetime_binds_refuse_naive_values() -> None:
    from sqlalchemy.dialects import sqlite  # noqa: PLC0415

    from bastion.storage.columns import UTCDateTime  # noqa: PLC0415
    from bastion.storage.prepared import _bind_processor  # noqa: PLC0415

    fast = _bind_processor(UTCDateTime(), sqlite.dialect())
    assert fast is not None
    with pytest.raises(ValueError, match="naive"):
        fast(datetime(2026, 1, 1))  # noqa: DTZ001


def test_sqlite_utc_datetime_binds_repeat_the_same_value() -> None:
    from sqlalchemy.dialects import sqlite  # noqa: PLC0415

    from bastion.storage.columns import UTCDateTime  # noqa: PLC0415
    from bastion.storage.prepared import _bind_processor  # noqa: PLC0415

    fast = _bind_processor(UTCDateTime(), sqlite.dialect())
    assert fast is not None
    later = NOW + timedelta(microseconds=1)
    assert [fast(NOW), fast(NOW), fast(later), fast(NOW)] == [
        "2026-11-29 01:02:03.456789",
        "2026-11-29 01:02:03.456789",
        "2026-11-29 01:02:03.456790",
        "2026-11-29 01:02:03.456789",
    ]


def test_sqlite_utc_datetime_binds_of_interleaved_values_are_each_their_own() -> None:
    from sqlalchemy.dialects import sqlite  # noqa: PLC0415

    from bastion.storage.columns import UTCDateTime  # noqa: PLC0415
    from bastion.storage.prepared import _bind_processor  # noqa: PLC0415

    dialect = sqlite.dialect()
    kind = UTCDateTime()
    fast = _bind_processor(kind, dialect)
    reference = kind.dialect_impl(dialect).bind_processor(dialect)
    assert fast is not None
    assert reference is not None
    # A rotation's order (now, now, idle since, now), then three values taking turns: the
    # two remembered texts never answer for a third value, equal or not.
    a, b, c = NOW, NOW - timedelta(days=7), NOW + timedelta(seconds=1)
    equal_to_a = NOW.astimezone(timezone(timedelta(hours=2)))
    for value in [a, a, b, a, c, b, a, c, c, equal_to_a, b, a, None, a]:
        assert fast(value) == reference(value)


def test_a_statement_compiled_for_two_dialects_keeps_each_form() -> None:
    from sqlalchemy import Column, Integer, MetaData, Table  # noqa: PLC0415
    from sqlalchemy.dialects import postgresql, sqlite  # noqa: PLC0415

    table = Table("t", MetaData(), Column("id", Integer, primary_key=True))
    prepared = PreparedStatement(select(table.c.id).where(table.c.id == bindparam("i")))
    lite, pg = sqlite.dialect(), postgresql.dialect()
    forms = [prepared._form(d) for d in (lite, pg, lite, lite, pg)]
    assert [form.sql.count("?") for form in forms] == [1, 0, 1, 1, 0]
    assert forms[0] is forms[2] is forms[3]
    assert forms[1] is forms[4]
    assert forms[0] is not forms[1]


def test_json_lists_are_remembered_as_equal_new_lists() -> None:
    import json  # noqa: PLC0415

    from bastion.storage.prepared import _JSON_TEXTS_MAX, _remembering_lists  # noqa: PLC0415

    decoded: list[Any] = []

    def process(value: Any) -> Any:
        decoded.append(value)
        return None if value is None else json.loads(value)

    remembering = _remembering_lists(process)
    texts = ['["pwd","otp"]', '["pwd"]', "[]", '{"a":1}', '[1,"x"]', '[["pwd"]]', "null", "3"]
    for text in texts:
        first, second = remembering(text), remembering(text)
        assert first == second == json.loads(text)
        if isinstance(first, list):
            assert first is not second
            first.append("changed")  # the caller's list: what is remembered stays as it was
            assert remembering(text) == json.loads(text)
    assert remembering(None) is None
    long_text = json.dumps(["x" * 300])
    assert remembering(long_text) == remembering(long_text) == ["x" * 300]
    # Decoded once each: the lists of strings; every time: the others.
    assert decoded.count('["pwd","otp"]') == 1
    assert decoded.count("[]") == 1
    assert decoded.count('{"a":1}') == 2
    assert decoded.count('[1,"x"]') == 3
    assert decoded.count('[["pwd"]]') == 3
    assert decoded.count(long_text) == 2
    many = [json.dumps([str(n)]) for n in range(_JSON_TEXTS_MAX * 3)]
    assert [remembering(text) for text in many] == [json.loads(text) for text in many]


async def test_json_rows_read_again_are_sqlalchemys(database: Database) -> None:
    user = await _user(database)
    await _session(database, user.id)
    for _ in range(3):
        mine, theirs = await database.read(_both(SESSION_BY_ID, {"sid": "s-1"}))
        assert mine == theirs
        assert mine[0][list(sessions.c.keys()).index("amr")] == ["pwd", "otp"]
