"""Sessions: a partial index on a user's live sessions (user, created_at, id) where not revoked.

A login ends the user's live sessions beyond the per-user limit; with only ``ix_sessions_user_id``
that statement visited every session the user ever had (ended ones included), so each login
cost more as the history grew. The partial index holds live sessions only.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_sessions_user_live",
        "sessions",
        ["user_id", "created_at", "id"],
        sqlite_where=sa.text("revoked_at IS NULL"),
        postgresql_where=sa.text("revoked_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_sessions_user_live", table_name="sessions")
