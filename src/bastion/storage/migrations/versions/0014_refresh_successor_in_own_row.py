"""Refresh tokens: the sealed successor kept in its own row, the parent naming it.

A rotation used to write three ``refresh_tokens`` rows: the token used (``used_at``, and its
successor sealed beside it for the retry grace), the successor (inserted), and the token's
parent (its sealed copy of the token just used, erased). With 32 sessions rotating at once the
three rows sit on three different pages: a third of the table's pages a rotation appends to
the WAL. Now the successor is inserted with its own sealed copy (``successor_sealed``, the same
value: bound to its parent's digest), the token used names it (``successor_hash``, new), and
the sealed copy is erased when the successor is used, in the same UPDATE that marks it used:
two rows. The same grace, the same erasure.

Existing rows move to the new layout: each sealed copy goes from the parent's row to the
successor's (found through a temporary index on ``parent_hash``), so a retry within the grace
across the upgrade still gets the same successor. The downgrade moves them back.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TEMPORARY_INDEX = "ix_refresh_tokens_parent_hash_0014"


_tokens = sa.table(
    "refresh_tokens",
    sa.column("token_hash", sa.String()),
    sa.column("parent_hash", sa.String()),
    sa.column("used_at", sa.DateTime()),
    sa.column("successor_sealed", sa.Text()),
    sa.column("successor_hash", sa.String()),
)


def upgrade() -> None:
    op.add_column("refresh_tokens", sa.Column("successor_hash", sa.String(64), nullable=True))
    op.create_index(_TEMPORARY_INDEX, "refresh_tokens", ["parent_hash"])
    token, child, parent = _tokens, _tokens.alias("child"), _tokens.alias("parent")
    # A used token holding a sealed successor names that successor (its child)...
    op.execute(
        sa.update(token)
        .where(token.c.successor_sealed.is_not(None))
        .values(
            successor_hash=sa.select(child.c.token_hash)
            .where(child.c.parent_hash == token.c.token_hash)
            .limit(1)
            .scalar_subquery()
        )
    )
    # ...the unused successor takes the sealed copy from its parent...
    op.execute(
        sa.update(token)
        .where(token.c.used_at.is_(None), token.c.parent_hash.is_not(None))
        .values(
            successor_sealed=sa.select(parent.c.successor_sealed)
            .where(parent.c.token_hash == token.c.parent_hash)
            .scalar_subquery()
        )
    )
    # ...and used tokens hold none (a successor already used had its copy erased).
    op.execute(
        sa.update(token)
        .where(token.c.used_at.is_not(None), token.c.successor_sealed.is_not(None))
        .values(successor_sealed=sa.null())
    )
    op.drop_index(_TEMPORARY_INDEX, table_name="refresh_tokens")


def downgrade() -> None:
    token, child = _tokens, _tokens.alias("child")
    # The sealed copy of an unused successor goes back to its parent's row...
    op.execute(
        sa.update(token)
        .where(token.c.successor_hash.is_not(None))
        .values(
            successor_sealed=sa.select(child.c.successor_sealed)
            .where(child.c.token_hash == token.c.successor_hash, child.c.used_at.is_(None))
            .scalar_subquery()
        )
    )
    # ...and unused tokens hold none.
    op.execute(
        sa.update(token)
        .where(token.c.used_at.is_(None), token.c.successor_sealed.is_not(None))
        .values(successor_sealed=sa.null())
    )
    with op.batch_alter_table("refresh_tokens") as batch:
        batch.drop_column("successor_hash")
