"""Sessions: ``ix_sessions_user_live`` also holds ``absolute_expires_at`` and ``revoked_at``.

Every login ends the user's live sessions beyond the per-user limit
(``_statements.EVICT_BEYOND_LIMIT``): its subquery walks the user's live sessions newest first
in this index and keeps those with ``absolute_expires_at > now`` and ``revoked_at IS NULL``.
Without those columns in the index SQLite read each of those sessions' table rows (up to the
limit, 100) to test them; with them the subquery is answered from the index alone (a covering
index). ``revoked_at`` is NULL in every entry (the index is partial on it) and costs one byte
an entry, but SQLite (3.40) covers a query with a partial index only when the index holds the
columns of its condition too. Same name, same partial condition, same leading columns and
order.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NAME = "ix_sessions_user_live"


def _create(columns: list[str]) -> None:
    op.create_index(
        _NAME,
        "sessions",
        columns,
        sqlite_where=sa.text("revoked_at IS NULL"),
        postgresql_where=sa.text("revoked_at IS NULL"),
    )


def upgrade() -> None:
    op.drop_index(_NAME, table_name="sessions")
    _create(["user_id", "created_at", "id", "absolute_expires_at", "revoked_at"])


def downgrade() -> None:
    op.drop_index(_NAME, table_name="sessions")
    _create(["user_id", "created_at", "id"])
