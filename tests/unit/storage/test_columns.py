"""UTCDateTime's one-step result processing answers exactly as SQLAlchemy's chain (the driver
type's processor, then ``process_result_value``): same values, same ``UTC`` tzinfo, same
errors, on SQLite text and on PostgreSQL's datetimes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, bindparam, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from bastion.storage import Database
from bastion.storage.columns import UTCDateTime, _aware_utc, _sqlite_utc
from bastion.storage.prepared import PreparedStatement

metadata = MetaData()
stamps = Table(
    "stamps",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("at", UTCDateTime(), nullable=True),
)
#: The same table seen with its column as text: rows written as other tools would.
raw_stamps = Table(
    "stamps", MetaData(), Column("id", Integer, primary_key=True), Column("at", String)
)

MIN = datetime(1, 1, 1, tzinfo=UTC)
MAX = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
EDGES = [
    MIN,
    MIN + timedelta(microseconds=1),
    MAX,
    MAX - timedelta(microseconds=1),
    datetime(2026, 11, 29, 5, 5, 25, tzinfo=UTC),  # whole second: microseconds 0
    datetime(2026, 11, 29, 5, 5, 25, 1, tzinfo=UTC),
    datetime(2026, 11, 29, 5, 5, 25, 999999, tzinfo=UTC),
    datetime(2024, 2, 29, 23, 59, 59, 500000, tzinfo=timezone(timedelta(hours=5, minutes=30))),
    datetime(2024, 12, 31, 20, 0, 0, 7, tzinfo=timezone(timedelta(hours=-8))),
    datetime(2000, 1, 1, tzinfo=timezone(timedelta(hours=14))),
]


def _chain(dialect: Dialect) -> Any:
    """SQLAlchemy's own result processing of the type (the base class's method)."""
    kind = UTCDateTime().dialect_impl(dialect)
    return TypeDecorator.result_processor(kind, dialect, None)


def _same(fast: Any, general: Any, value: Any) -> None:
    try:
        expected: Any = general(value)
    except Exception as exc:  # noqa: BLE001 - compared with the fast path's
        error: Exception | None = exc
    else:
        error = None
    if error is not None:
        with pytest.raises(type(error)) as caught:
            fast(value)
        assert str(caught.value) == str(error)
        return
    got = fast(value)
    assert got == expected
    assert repr(got) == repr(expected)
    if expected is not None:
        assert got.tzinfo is expected.tzinfo is UTC


def test_sqlite_and_postgres_get_the_one_step_processors() -> None:
    lite, pg = sqlite.dialect(), postgresql.asyncpg.dialect()  # type: ignore[attr-defined]
    assert UTCDateTime().dialect_impl(lite).result_processor(lite, None) is _sqlite_utc
    assert UTCDateTime().dialect_impl(pg).result_processor(pg, None) is _aware_utc


def test_a_custom_sqlite_storage_format_keeps_sqlalchemys_chain() -> None:
    lite = sqlite.dialect()

    class Other(UTCDateTime):
        impl = sqlite.DATETIME(
            storage_format="%(year)04d/%(month)02d/%(day)02d %(hour)02d:%(minute)02d",
            regexp=r"(\d+)/(\d+)/(\d+) (\d+):(\d+)",
        )

    process = Other().dialect_impl(lite).result_processor(lite, None)
    assert process not in (_sqlite_utc, _aware_utc)
    assert process is not None
    assert process("2026/11/29 05:06") == datetime(2026, 11, 29, 5, 6, tzinfo=UTC)


TEXTS = [
    None,
    *(value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds") for value in EDGES),
    "2026-11-29 05:05:25",  # CURRENT_TIMESTAMP's form
    "2026-11-29",
    "2026-11-29T05:05:25.123456",
    "2026-11-29 05:05:25.123456Z",
    "2026-11-29 05:05:25.123+02:00",
    "2026-11-29 05:05:25.1+0100",  # 26 characters with an offset of its own
    "2026-11-29 05:05:25.1-0000",
    "2026-11-29 05:05:25.12345Z",
    "2026-11-29 05:05:25.12345+",
    "2026-W48-7 05:05:25.123456",  # an ISO week date, 26 characters
    "2026-11-29 05:05:25.1234567",
    "2026-11-29 24:00:00.000000",
    "2026-02-30 05:05:25.123456",
    "0000-01-01 00:00:00.000000",
    "9999-12-31 23:59:59.999999",
    "2026-11-29 05:05:25.12345a",
    "2026-11-29 05:05:25,123456",
    "2026-11-29x05:05:25.123456",
    "2026-11-29 05:05:25.123456+00:00",
    "",
    "not a timestamp at all, no",
    "\uff12\uff10\uff12\uff16-11-29 05:05:25.123456",  # non-ASCII (fullwidth) digits
]


@pytest.mark.parametrize("text", TEXTS)
def test_sqlite_text_converts_as_sqlalchemys_chain(text: str | None) -> None:
    lite = sqlite.dialect()
    _same(_sqlite_utc, _chain(lite), text)


@pytest.mark.parametrize(
    "value",
    [None, *EDGES, *(value.replace(tzinfo=None) for value in EDGES)],  # aware and naive
)
def test_driver_datetimes_convert_as_sqlalchemys_chain(value: datetime | None) -> None:
    for dialect in (sqlite.dialect(), postgresql.asyncpg.dialect()):  # type: ignore[attr-defined]
        kind = UTCDateTime().dialect_impl(dialect)
        _same(
            _aware_utc,
            lambda v, kind=kind, dialect=dialect: kind.process_result_value(v, dialect),
            value,
        )
    _same(_aware_utc, _chain(postgresql.asyncpg.dialect()), value)  # type: ignore[attr-defined]


async def test_edge_values_round_trip_on_both_databases(database_url: str) -> None:
    db = Database(database_url)
    at = bindparam("at", type_=UTCDateTime())
    read = PreparedStatement(select(stamps.c.id, stamps.c.at).order_by(stamps.c.id))
    add = PreparedStatement(insert(stamps).values(id=bindparam("id"), at=at))
    try:
        async with db.engine.begin() as connection:
            await connection.run_sync(metadata.create_all)
        await db.transaction(lambda c: c.execute(insert(stamps).values(id=0, at=None)))
        for number, value in enumerate(EDGES, 1):
            await db.transaction(lambda c, n=number, v=value: add.execute(c, {"id": n, "at": v}))
        through_core = await db.read(
            lambda c: c.execute(select(stamps.c.id, stamps.c.at).order_by(stamps.c.id)).all()
        )
        prepared = await db.read(lambda c: read.execute(c, {}))
    finally:
        await db.dispose()
    expected = [None, *EDGES]
    for rows in (through_core, prepared):
        assert [row.at for row in rows] == expected
        assert all(row.at.tzinfo is UTC for row in rows[1:])


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_text_written_by_others_reads_as_before_on_sqlite(database_url: str) -> None:
    db = Database(database_url)
    texts = [text for text in TEXTS if text is not None]
    try:
        async with db.engine.begin() as connection:
            await connection.run_sync(metadata.create_all)
        for number, text in enumerate(texts):
            await db.transaction(
                lambda c, n=number, t=text: c.execute(insert(raw_stamps).values(id=n, at=t))
            )
        lite = db.engine.dialect
        general = _chain(lite)
        for number, text in enumerate(texts):
            query = select(stamps.c.at).where(stamps.c.id == number)
            try:
                expected: Any = general(text)
            except ValueError:
                with pytest.raises(ValueError):  # noqa: PT011 - fromisoformat's, as before
                    await db.read(lambda c, q=query: c.execute(q).scalar_one())
                continue
            got = await db.read(lambda c, q=query: c.execute(q).scalar_one())
            assert got == expected
            assert got.tzinfo is UTC
    finally:
        await db.dispose()
