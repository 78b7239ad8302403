"""The privacy service: data export and erasure of one account, each recorded.

``export`` reads everything about an account (:mod:`bastion.privacy.export`) and records
``privacy:data:exported``; ``erase`` erases it (:mod:`bastion.privacy.erasure`) and records
``privacy:account:erased`` with the acting user (the account itself, or an administrator) as
``actor``. Both raise :class:`AccountNotFound` for an unknown or already erased account.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import SQLAlchemyError

from bastion.audit.context import record_from_scope
from bastion.audit.events import EventType, Outcome
from bastion.audit.interfaces import AuditRecorder
from bastion.clock import Clock
from bastion.identity.accounts.models import users
from bastion.identity.accounts.users import User, get_user
from bastion.identity.mfa.stepup import EnrollmentPolicy
from bastion.identity.sessions.services import SessionService
from bastion.logging import get_logger
from bastion.privacy.erasure import REVOKE_REASON, erase_rows, erased_email
from bastion.privacy.errors import AccountNotFound
from bastion.privacy.export import SECTIONS, collect
from bastion.privacy.settings_changes import SettingsChanges
from bastion.storage import Database, StorageError

__all__ = ["PrivacyService"]

Scope = Mapping[str, Any]
logger = get_logger("bastion.privacy")
SNAPSHOT_ISOLATION = "REPEATABLE READ"


def _is_erased(user: User) -> bool:
    return user.email_normalized == erased_email(user.id)


class PrivacyService:
    def __init__(
        self,
        database: Database,
        *,
        audit: AuditRecorder,
        clock: Clock,
        sessions: SessionService,
        enrollment: EnrollmentPolicy,
        settings_changes: SettingsChanges,
    ) -> None:
        self.database = database
        self._audit = audit
        self._clock = clock
        self._sessions = sessions
        self._enrollment = enrollment
        self.settings_changes = settings_changes

    async def start(self) -> None:
        """Compare the settings with the previous start (see settings_changes). Not fatal when
        the database does not answer: readiness reports it, and the next start compares."""
        try:
            await self.settings_changes.check()
        except (SQLAlchemyError, StorageError, OSError) as exc:
            logger.warning("settings fingerprint not checked", error=type(exc).__name__)

    async def export(self, user_id: str, scope: Scope) -> dict[str, Any]:
        """The export document of ``user_id``. Raises AccountNotFound."""
        # One snapshot for every section: REPEATABLE READ on PostgreSQL (READ COMMITTED would
        # give each query its own). Python's sqlite3 opens no transaction before a SELECT, so
        # SQLite gets an explicit BEGIN: in WAL mode its first read fixes the snapshot.
        async with self.database.engine.connect() as connection:
            if self.database.is_sqlite:
                await connection.exec_driver_sql("BEGIN")
            else:
                await connection.execution_options(isolation_level=SNAPSHOT_ISOLATION)
                await connection.begin()
            user = await get_user(connection, user_id)
            if user is None or _is_erased(user):
                raise AccountNotFound
            document = await collect(connection, user, now=self._clock.now())
        record_from_scope(
            self._audit,
            scope,
            EventType.PRIVACY_DATA_EXPORTED,
            Outcome.SUCCESS,
            actor=user.subject,
            subject=user.subject,
            details={"format": "json", "sections": list(SECTIONS)},
            clock=self._clock,
        )
        return document

    async def erase(self, user_id: str, *, actor: str, scope: Scope) -> None:
        """Erase ``user_id`` in one transaction. Raises AccountNotFound (unknown, or erased)."""
        now = self._clock.now()
        async with self.database.engine.begin() as connection:
            # Claims the row (a row lock on PostgreSQL, the write lock on SQLite) and checks it
            # is not erased yet: of two concurrent erasures, the second answers 404.
            claimed = await connection.execute(
                update(users)
                .where(users.c.id == user_id, users.c.email_normalized != erased_email(user_id))
                .values(updated_at=now)
                .returning(users.c.email)
            )
            row = claimed.first()
            if row is None:
                raise AccountNotFound
            revoked, tuples = await erase_rows(connection, user_id, row.email, now)
        subject = f"user:{user_id}"
        self._sessions.after_revoke_all(revoked, user_id, REVOKE_REASON, scope, actor)
        self._enrollment.forget(user_id)
        record_from_scope(
            self._audit,
            scope,
            EventType.PRIVACY_ACCOUNT_ERASED,
            Outcome.SUCCESS,
            actor=actor,
            subject=subject,
            details={"sessions_revoked": len(revoked), "tuples_deleted": tuples},
            clock=self._clock,
        )
