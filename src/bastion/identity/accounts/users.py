"""The :class:`User` record and the queries every identity flow shares."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Row, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bastion.identity.accounts.models import users
from bastion.storage.prepared import PreparedStatement
from bastion.storage.sqlite_inline import InlineUnit

__all__ = [
    "USER_BY_ID",
    "User",
    "find_by_email",
    "get_user",
    "insert_user",
    "new_user_id",
    "read_user",
    "read_user_by_email",
    "read_user_by_email_unit",
    "set_password",
]

#: Built once (every authenticated profile read runs it): building the expression and its cache
#: key on each call cost more than SQLite's lookup.
USER_BY_ID = select(users).where(users.c.id == bindparam("uid"))
#: The same, run on the driver's cursor (see :mod:`bastion.storage.prepared`).
_READ_USER = PreparedStatement(USER_BY_ID)
#: Built once too: every password login looks its account up by address.
_USER_BY_EMAIL = select(users).where(users.c.email_normalized == bindparam("email"))
_READ_USER_BY_EMAIL = PreparedStatement(_USER_BY_EMAIL)


@dataclass(frozen=True, slots=True)
class User:
    """A row of ``users``. ``password_hash`` is None when no password is usable."""

    id: str
    email: str
    email_normalized: str
    display_name: str
    password_hash: str | None
    is_admin: bool
    email_verified: bool
    disabled: bool
    created_at: datetime
    updated_at: datetime
    password_changed_at: datetime | None

    @property
    def subject(self) -> str:
        """The audit reference of this account."""
        return f"user:{self.id}"

    @property
    def can_log_in(self) -> bool:
        """Enabled, confirmed, and with a password."""
        return not self.disabled and self.email_verified and self.password_hash is not None

    @classmethod
    def of(cls, row: Row[Any]) -> User:
        if row._fields == _USER_COLUMNS:
            # A whole ``users`` row, its columns in this class's field order: positional, not
            # a dictionary of the fields built and unpacked (every login builds one).
            return cls(*cast("tuple[Any, ...]", row))
        return cls(**{name: getattr(row, name) for name in cls.__slots__})


#: The columns of ``users`` in table order, which is :class:`User`'s field order (checked at
#: import: a column added to one and not the other fails here, not in a login).
_USER_COLUMNS = tuple(column.key for column in users.c)
if User.__slots__ != _USER_COLUMNS:  # pragma: no cover - a schema/model mismatch
    raise RuntimeError("User's fields must be the users table's columns, in order")


def new_user_id() -> str:
    """A random id (UUIDv4): ids appear in URLs and events and must not count accounts."""
    return str(uuid.uuid4())


async def get_user(connection: AsyncConnection, user_id: str) -> User | None:
    row = (await connection.execute(USER_BY_ID, {"uid": user_id})).first()
    return User.of(row) if row is not None else None


def read_user(connection: Connection, user_id: str) -> User | None:
    """:func:`get_user` on a synchronous connection (:meth:`Database.read`)."""
    rows = _READ_USER.execute(connection, {"uid": user_id})
    return User.of(rows[0]) if rows else None


async def find_by_email(connection: AsyncConnection, email_normalized: str) -> User | None:
    row = (await connection.execute(_USER_BY_EMAIL, {"email": email_normalized})).first()
    return User.of(row) if row is not None else None


def read_user_by_email(connection: Connection, email_normalized: str) -> User | None:
    """:func:`find_by_email` on a synchronous connection (:meth:`Database.read`)."""
    rows = _READ_USER_BY_EMAIL.execute(connection, {"email": email_normalized})
    return User.of(rows[0]) if rows else None


def read_user_by_email_unit(unit: InlineUnit, email_normalized: str) -> tuple[User | None]:
    """:func:`read_user_by_email` as a read of :meth:`Database.try_read` (the user in a
    1-tuple: None would mean the read did not run)."""
    rows = _READ_USER_BY_EMAIL.execute_unit(unit, {"email": email_normalized})
    return (User.of(rows[0]) if rows else None,)


async def insert_user(
    connection: AsyncConnection,
    *,
    email: str,
    email_normalized: str,
    display_name: str,
    password_hash: str | None,
    now: datetime,
    is_admin: bool = False,
    email_verified: bool = False,
) -> User:
    """Insert a user; raises ``IntegrityError`` when the normalised email is taken."""
    values = {
        "id": new_user_id(),
        "email": email,
        "email_normalized": email_normalized,
        "display_name": display_name,
        "password_hash": password_hash,
        "is_admin": is_admin,
        "email_verified": email_verified,
        "disabled": False,
        "created_at": now,
        "updated_at": now,
        "password_changed_at": now if password_hash is not None else None,
    }
    await connection.execute(insert(users).values(**values))
    return User(**values)  # type: ignore[arg-type]


async def set_password(
    connection: AsyncConnection, user_id: str, password_hash: str | None, now: datetime
) -> None:
    await connection.execute(
        update(users)
        .where(users.c.id == user_id)
        .values(password_hash=password_hash, password_changed_at=now, updated_at=now)
    )
