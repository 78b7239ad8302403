"""Audit events: the indexes on optional columns become partial (rows where the column is set).

Every stored event paid an insert into each of the seven indexes of ``audit_events``, also for
the columns it leaves empty: a rejected request (``http:request:rejected``, the event an attacker
produces at will) has no actor and no subject, a background job no request id or client IP.
``ix_audit_events_actor_time``, ``ix_audit_events_subject_time``, ``ix_audit_events_request_id``
and ``ix_audit_events_client_ip_time`` keep their names and columns and now hold only the rows
where that column is not NULL. Every filter of the audit search compares the column with a
value (``actor = ?``), which implies ``IS NOT NULL``: SQLite and PostgreSQL use the partial
index for it as before (``tests/unit/audit/test_query_plans.py``). ``time``, ``type`` and
``seq`` are never NULL: those indexes are unchanged.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: (index name, its columns, the optional column it is partial on).
_INDEXES = (
    ("ix_audit_events_actor_time", ["actor", "time"], "actor"),
    ("ix_audit_events_subject_time", ["subject", "time"], "subject"),
    ("ix_audit_events_request_id", ["request_id"], "request_id"),
    ("ix_audit_events_client_ip_time", ["client_ip", "time"], "client_ip"),
)


def upgrade() -> None:
    for name, columns, optional in _INDEXES:
        condition = sa.column(optional).is_not(None)
        op.drop_index(name, table_name="audit_events")
        op.create_index(
            name,
            "audit_events",
            columns,
            sqlite_where=condition,
            postgresql_where=condition,
        )


def downgrade() -> None:
    for name, columns, _optional in _INDEXES:
        op.drop_index(name, table_name="audit_events")
        op.create_index(name, "audit_events", columns)
