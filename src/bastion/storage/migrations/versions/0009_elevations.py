"""Authorization: just-in-time elevation requests (the grants are tuples of the system store).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _time(name: str, *, nullable: bool) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "authz_elevations",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("duration_seconds", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        _time("requested_at", nullable=False),
        sa.Column("decided_by", sa.String(length=36), nullable=True),
        _time("decided_at", nullable=True),
        _time("expires_at", nullable=True),
        sa.Column("revoked_by", sa.String(length=36), nullable=True),
        _time("revoked_at", nullable=True),
        sa.Column("expiry_recorded", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_authz_elevations")),
    )
    op.create_index("ix_authz_elevations_user_id", "authz_elevations", ["user_id"])
    op.create_index("ix_authz_elevations_status", "authz_elevations", ["status"])


def downgrade() -> None:
    op.drop_index("ix_authz_elevations_status", table_name="authz_elevations")
    op.drop_index("ix_authz_elevations_user_id", table_name="authz_elevations")
    op.drop_table("authz_elevations")
