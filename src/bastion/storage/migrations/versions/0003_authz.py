"""Authorization: stores, models, tuples, changelog.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = 26


def _time(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _bigint_pk() -> sa.types.TypeEngine[Any]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _store_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["store_id"],
        ["authz_stores.id"],
        name=op.f(f"fk_{table}_store_id_authz_stores"),
        ondelete="CASCADE",
    )


def _tuple_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("object_type", sa.String(length=254), nullable=False),
        sa.Column("object", sa.String(length=256), nullable=False),
        sa.Column("relation", sa.String(length=50), nullable=False),
        sa.Column("user", sa.String(length=512), nullable=False),
        sa.Column("condition_name", sa.String(length=256), nullable=True),
        sa.Column("condition_context", _json(), nullable=True),
        _time("created_at"),
    ]


def upgrade() -> None:
    op.create_table(
        "authz_stores",
        sa.Column("id", sa.String(length=ID), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        _time("created_at"),
        _time("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_authz_stores")),
    )
    op.create_table(
        "authz_models",
        sa.Column("seq", _bigint_pk(), autoincrement=True, nullable=False),
        sa.Column("id", sa.String(length=ID), nullable=False),
        sa.Column("store_id", sa.String(length=ID), nullable=False),
        sa.Column("schema_version", sa.String(length=16), nullable=False),
        sa.Column("model", _json(), nullable=False),
        _time("created_at"),
        _store_fk("authz_models"),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_authz_models")),
        sa.UniqueConstraint("id", name=op.f("uq_authz_models_id")),
    )
    op.create_index("ix_authz_models_store_id_seq", "authz_models", ["store_id", "seq"])
    op.create_table(
        "authz_tuples",
        sa.Column("id", _bigint_pk(), autoincrement=True, nullable=False),
        sa.Column("store_id", sa.String(length=ID), nullable=False),
        *_tuple_columns(),
        _store_fk("authz_tuples"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_authz_tuples")),
        sa.UniqueConstraint(
            "store_id", "object", "relation", "user", name="uq_authz_tuples_store_id_key"
        ),
    )
    op.create_index(
        "ix_authz_tuples_by_user", "authz_tuples", ["store_id", "object_type", "relation", "user"]
    )
    op.create_index("ix_authz_tuples_user", "authz_tuples", ["store_id", "user"])
    op.create_table(
        "authz_changes",
        sa.Column("id", _bigint_pk(), autoincrement=True, nullable=False),
        sa.Column("store_id", sa.String(length=ID), nullable=False),
        sa.Column("operation", sa.SmallInteger(), nullable=False),
        *_tuple_columns(),
        _store_fk("authz_changes"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_authz_changes")),
    )
    op.create_index("ix_authz_changes_store_id_id", "authz_changes", ["store_id", "id"])
    op.create_index(
        "ix_authz_changes_store_id_type_id", "authz_changes", ["store_id", "object_type", "id"]
    )


def downgrade() -> None:
    op.drop_table("authz_changes")
    op.drop_table("authz_tuples")
    op.drop_table("authz_models")
    op.drop_table("authz_stores")
