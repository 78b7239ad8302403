"""The declarative base every domain's tables register on.

One :class:`~sqlalchemy.MetaData` for the whole application, so Alembic sees every table (see
:mod:`bastion.storage.schema` for the list of model modules). The naming convention gives every
constraint and index a deterministic name: migrations can then drop or alter them by name on
every backend (SQLite batch mode needs names to recreate a table).
"""

from __future__ import annotations

from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Base of ORM models; core tables use ``Base.metadata`` directly."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
