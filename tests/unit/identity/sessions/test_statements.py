"""The login's session statement: the ``amr`` it binds is encoded as the column encodes it."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql import asyncpg
from sqlalchemy.engine import Dialect

from bastion.identity.sessions._statements import LOGIN_NEW_SESSION, _RememberedJSON
from bastion.identity.sessions.models import sessions

DIALECTS = [sqlite.dialect(), asyncpg.dialect()]


def _column_processor(dialect: Dialect) -> Any:
    return sessions.c.amr.type.dialect_impl(dialect).bind_processor(dialect)


def _remembering(dialect: Dialect) -> Any:
    return _RememberedJSON().dialect_impl(dialect).bind_processor(dialect)


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.name)
@pytest.mark.parametrize(
    "value",
    [["pwd"], ["pwd", "otp"], [], ["é\u2028\"'"], [1, "pwd"], [["pwd"]], {"a": 1}, None, "pwd"],
)
def test_the_same_text_as_the_column_every_time(dialect: Dialect, value: Any) -> None:
    column, remembering = _column_processor(dialect), _remembering(dialect)
    for _ in range(3):
        assert remembering(value) == column(value)


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.name)
def test_a_list_changed_after_binding_gets_its_new_text(dialect: Dialect) -> None:
    remembering, column = _remembering(dialect), _column_processor(dialect)
    methods = ["pwd"]
    assert remembering(methods) == column(["pwd"])
    methods.append("otp")
    assert remembering(methods) == column(["pwd", "otp"])
    assert remembering(["pwd"]) == column(["pwd"])


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.name)
def test_the_session_statement_keeps_the_columns_sql(dialect: Dialect) -> None:
    """Same SQL as the column's own type (PostgreSQL's ``::JSONB`` cast included)."""
    form = LOGIN_NEW_SESSION._form(dialect)  # the compiled form under test
    if dialect.name == "postgresql":
        assert "::JSONB AS" in form.sql
    processors = {name: process for name, process, _ in form.binds}
    assert processors["methods"](["pwd"]) == _column_processor(dialect)(["pwd"])
