"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.engine import Dialect, processors
from sqlalchemy.types import TypeDecorator

_fromisoformat = datetime.fromisoformat


def _aware_utc(value: Any) -> datetime | None:
    """A driver's timestamp as aware UTC: naive values are UTC (SQLite), aware ones converted."""
    if value is None:
        return None
    if not isinstance(value, datetime):  # pragma: no cover - drivers return datetime
        raise TypeError(f"unexpected timestamp type {type(value).__name__}")
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _sqlite_utc(value: str | None) -> datetime | None:
    """SQLite's DATETIME text (SQLAlchemy's default storage format) as aware UTC, in one step:
    the same as SQLAlchemy's ``str_to_datetime`` (``datetime.fromisoformat``) followed by
    :func:`_aware_utc`.

    The text Bastion and SQLAlchemy write (``YYYY-MM-DD HH:MM:SS.ffffff``, naive UTC) is parsed
    with a ``+00:00`` offset appended, which ``fromisoformat`` answers with the ``UTC``
    singleton. Any other text (another length, its own offset, a malformed one) takes the
    general two steps, with their results and errors."""
    if value is None:
        return None
    if len(value) == 26 and value[10] == " " and value[19] == ".":
        try:
            parsed = _fromisoformat(value + "+00:00")
        except ValueError:
            pass
        else:
            if parsed.tzinfo is UTC:
                return parsed
    return _aware_utc(_fromisoformat(value))


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC timestamp on every backend.

    PostgreSQL stores ``timestamptz``; SQLite has no time zones, so values are stored as naive UTC
    and read back as aware UTC. Naive datetimes are refused: a local time silently taken for UTC
    would shift every expiry (a token living hours longer than its TTL).
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: Bastion stores aware UTC timestamps only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:  # noqa: ARG002
        return _aware_utc(value)

    def result_processor(
        self, dialect: Dialect, coltype: Any
    ) -> Callable[[Any], datetime | None] | None:
        """One function per value instead of SQLAlchemy's chain (the driver type's processor,
        then :meth:`process_result_value` with the dialect): :func:`_sqlite_utc` for SQLite's
        default text format, :func:`_aware_utc` when the driver returns datetimes itself;
        otherwise SQLAlchemy's chain."""
        impl = self.impl_instance.result_processor(dialect, coltype)
        if impl is None:
            return _aware_utc
        if impl is processors.str_to_datetime:
            return _sqlite_utc
        return super().result_processor(dialect, coltype)
