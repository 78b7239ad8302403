"""Audit trail: hash chain columns, chain head, checkpoints.

Events already stored keep ``seq`` and ``mac`` empty: they were written before the chain existed
and are not protected by it. ``legacy_max_id`` records the highest of their ids, so an unchained
row inserted later is recognised as an insertion.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MAC = 64
#: The "previous MAC" of the first event (see bastion.audit.chain.GENESIS_MAC).
GENESIS_MAC = "0" * MAC


def upgrade() -> None:
    op.add_column("audit_events", sa.Column("seq", sa.BigInteger(), nullable=True))
    op.add_column("audit_events", sa.Column("mac", sa.String(length=MAC), nullable=True))
    op.add_column("audit_events", sa.Column("key_id", sa.String(length=8), nullable=True))
    op.create_index("uq_audit_events_seq", "audit_events", ["seq"], unique=True)
    head = op.create_table(
        "audit_chain_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("mac", sa.String(length=MAC), nullable=False),
        sa.Column("anchor_seq", sa.BigInteger(), nullable=False),
        sa.Column("anchor_mac", sa.String(length=MAC), nullable=False),
        sa.Column("legacy_max_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_chain_head")),
    )
    op.create_table(
        "audit_checkpoints",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("mac", sa.String(length=MAC), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kid", sa.String(length=64), nullable=False),
        sa.Column("token", sa.Text(), nullable=False),
        sa.Column(
            "public_jwk",
            sa.JSON().with_variant(postgresql.JSONB(), "postgresql"),
            nullable=False,
        ),
        sa.Column("tag", sa.String(length=MAC), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_checkpoints")),
    )
    op.create_index("ix_audit_checkpoints_seq", "audit_checkpoints", ["seq"])
    events = sa.table("audit_events", sa.column("id", sa.BigInteger()))
    genesis = sa.literal(GENESIS_MAC, sa.String())
    op.execute(
        sa.insert(head).from_select(
            ["id", "seq", "mac", "anchor_seq", "anchor_mac", "legacy_max_id"],
            sa.select(
                sa.literal(1, sa.Integer()),
                sa.literal(0, sa.BigInteger()),
                genesis,
                sa.literal(0, sa.BigInteger()),
                genesis,
                sa.func.coalesce(sa.func.max(events.c.id), 0),
            ),
        )
    )


def downgrade() -> None:
    op.drop_index("ix_audit_checkpoints_seq", table_name="audit_checkpoints")
    op.drop_table("audit_checkpoints")
    op.drop_table("audit_chain_head")
    op.drop_index("uq_audit_events_seq", table_name="audit_events")
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_column("key_id")
        batch.drop_column("mac")
        batch.drop_column("seq")
