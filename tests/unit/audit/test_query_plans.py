"""Each filter of the audit search is served by an index (SQLite and PostgreSQL), also after
migration 0012 made the indexes on optional columns partial (``column IS NOT NULL``).

The plans are those of the very statements :func:`bastion.audit.query.search` runs (first page
and a page after a cursor), with bound parameters as sent.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ClauseElement, Executable

from bastion.audit.query import EventFilter, page_statement
from bastion.storage import Database, migrate

T0 = datetime(2026, 1, 1, tzinfo=UTC)
T1 = datetime(2026, 2, 1, tzinfo=UTC)

_TIME = "ix_audit_events_time"
_TYPE = "ix_audit_events_type_time"
_ACTOR = "ix_audit_events_actor_time"

#: Each filter and the indexes its page may use (one of a combined filter's).
FILTERS = [
    pytest.param(EventFilter(since=T0, until=T1), (_TIME,), id="time-range"),
    pytest.param(EventFilter(types=("authz:check:denied",)), (_TYPE,), id="type"),
    pytest.param(
        EventFilter(types=("a:b:c", "d:e:f"), since=T0, until=T1),
        (_TYPE, _TIME),
        id="types-and-range",
    ),
    pytest.param(EventFilter(actor="user:1"), (_ACTOR,), id="actor"),
    pytest.param(EventFilter(actor="user:1", since=T0), (_ACTOR, _TIME), id="actor-since"),
    pytest.param(
        EventFilter(subject="doc:1#viewer@user:2"), ("ix_audit_events_subject_time",), id="subject"
    ),
    pytest.param(EventFilter(client_ip="192.0.2.7"), ("ix_audit_events_client_ip_time",), id="ip"),
    pytest.param(EventFilter(request_id="9f2c6d3e"), ("ix_audit_events_request_id",), id="request"),
    pytest.param(EventFilter(outcome="failure", actor="user:1"), (_ACTOR,), id="outcome-actor"),
]


class _Explain(Executable, ClauseElement):
    """``EXPLAIN`` (SQLite: ``QUERY PLAN``; PostgreSQL: ``(COSTS OFF)``) of a statement, with
    the statement's own bound parameters."""

    inherit_cache = False

    def __init__(self, statement: Any) -> None:
        self.statement = statement


@compiles(_Explain, "sqlite")
def _explain_sqlite(element: _Explain, compiler: Any, **kw: Any) -> str:
    return "EXPLAIN QUERY PLAN " + compiler.process(element.statement, **kw)


@compiles(_Explain, "postgresql")
def _explain_postgresql(element: _Explain, compiler: Any, **kw: Any) -> str:
    return "EXPLAIN (COSTS OFF) " + compiler.process(element.statement, **kw)


async def _plan(connection: AsyncConnection, statement: Any) -> str:
    rows = (await connection.execute(_Explain(statement))).all()
    if connection.dialect.name == "sqlite":
        return "\n".join(str(row[-1]) for row in rows)
    return "\n".join(str(row[0]) for row in rows)


async def _plans(database_url: str) -> list[str]:
    """The plan of each filter's first page and of a page after a cursor."""
    database = Database(database_url)
    plans = []
    try:
        async with database.engine.connect() as connection:
            if connection.dialect.name == "postgresql":
                # An empty table is read whole whatever its indexes: ask which index can serve.
                await connection.exec_driver_sql("SET enable_seqscan = off")
            for param in FILTERS:
                query = param.values[0]
                plans += [
                    await _plan(connection, page_statement(query, before_id, 50))
                    for before_id in (None, 1000)
                ]
    finally:
        await database.dispose()
    return plans


async def test_each_filter_uses_an_index_as_before_the_partial_indexes(database_url: str) -> None:
    await migrate.upgrade(database_url, "0011")
    before = await _plans(database_url)
    await migrate.upgrade(database_url)
    after = await _plans(database_url)
    assert after == before  # the same plans as with the full indexes
    expected = [param.values[1] for param in FILTERS for _ in (None, 1000)]
    for plan, indexes in zip(after, expected, strict=True):
        # One of the filter's indexes; SQLite may walk the primary key down from a cursor
        # instead when it cannot tell how selective a time range is (as before 0012).
        assert any(name in plan for name in indexes) or "PRIMARY KEY (rowid<?)" in plan, plan
    # The partial indexes serve their filters, first page and after a cursor.
    for plan, indexes in zip(after[6:], expected[6:], strict=True):
        assert indexes[0] in plan, plan


def test_each_optional_column_filter_compares_with_a_value() -> None:
    # Each filter on an optional column compares the column with a value: rows where it is NULL
    # (left out of the partial indexes) can never match, so each partial index is complete for
    # its filter.
    for name, query in (
        ("actor", EventFilter(actor="user:1")),
        ("subject", EventFilter(subject="doc:1")),
        ("client_ip", EventFilter(client_ip="192.0.2.7")),
        ("request_id", EventFilter(request_id="r1")),
    ):
        sql = str(page_statement(query, None, 50))
        assert f"audit_events.{name} = :{name}_1" in sql, sql
        assert "NULL" not in sql, sql
