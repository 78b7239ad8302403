"""Administration of accounts: list and search, disable and enable, unlock, revoke sessions,
force a password reset. Every action is an audit event with the administrator as actor.

Authorization is decided by Bastion's authorization engine (:mod:`bastion.authz.builtin`):
each route needs one permission of the built-in model (``can_read_users``, ``can_manage_users``,
``can_unlock_users``, ``can_revoke_sessions``); deny by default.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from sqlalchemy import or_, select, update

from bastion.audit.context import record_from_scope
from bastion.audit.events import EventType, Outcome
from bastion.audit.interfaces import AuditRecorder
from bastion.clock import Clock
from bastion.http.errors import NotFound
from bastion.identity.accounts import history, tokens
from bastion.identity.accounts.guard import CredentialGuard
from bastion.identity.accounts.models import users
from bastion.identity.accounts.services import AccountService
from bastion.identity.accounts.tokens import TokenPurpose
from bastion.identity.accounts.users import User
from bastion.identity.mail import templates
from bastion.identity.sessions.services import RevokeReason, SessionService

__all__ = ["PAGE_SIZE", "AdminService"]

PAGE_SIZE = 50
Scope = Mapping[str, Any]
#: The built-in model's administrator permission (bastion.authz.builtin.Permission.ADMINISTER).
ADMINISTER = "can_administer"


class Authorizer(Protocol):
    """Decides a permission of Bastion's administration for a user.

    Returns True only for an enabled account holding the permission now; never raises for a
    denial (records every decision)."""

    async def allowed(
        self, user_id: str, permission: str, *, scope: Scope | None = None
    ) -> bool: ...


class AdminService:
    def __init__(
        self,
        accounts: AccountService,
        sessions: SessionService,
        guard: CredentialGuard,
        *,
        audit: AuditRecorder,
        clock: Clock,
    ) -> None:
        self.accounts = accounts
        self.database = accounts.database
        self.sessions = sessions
        self.guard = guard
        self._audit = audit
        self._clock = clock
        #: Decides every administration permission (``bastion.authz.builtin.SystemAuthz``,
        #: set when the services are wired); until then nothing is allowed (fail closed).
        self.authorizer: Authorizer | None = None

    async def allows(self, user_id: str, permission: str, *, scope: Scope | None = None) -> bool:
        """Whether the enabled account ``user_id`` holds ``permission`` (a relation of the
        built-in model, e.g. ``can_read_audit``), decided by the engine now."""
        if self.authorizer is None:
            return False
        return await self.authorizer.allowed(user_id, permission, scope=scope)

    async def is_admin(self, user_id: str) -> bool:
        """Whether ``user_id`` is an enabled administrator (``can_administer``), decided by
        the authorization engine (``users.is_admin`` is only a mirror)."""
        return await self.allows(user_id, ADMINISTER)

    async def list_users(
        self, *, query: str | None, after: str | None, limit: int = PAGE_SIZE
    ) -> tuple[list[User], str | None]:
        """A page of users ordered by id, optionally matching ``query`` in the email or the
        display name (case-insensitive, LIKE wildcards escaped)."""
        c = users.c
        statement = select(users).order_by(c.id).limit(limit + 1)
        if query:
            statement = statement.where(
                or_(
                    c.email_normalized.contains(query.casefold(), autoescape=True),
                    c.display_name.icontains(query, autoescape=True),
                )
            )
        if after is not None:
            statement = statement.where(c.id > after)
        async with self.database.engine.connect() as connection:
            rows = (await connection.execute(statement)).all()
        found = [User.of(row) for row in rows[:limit]]
        return found, found[-1].id if len(rows) > limit else None

    async def get(self, user_id: str) -> User:
        return await self.accounts.get(user_id)

    async def set_disabled(self, user_id: str, *, disabled: bool, actor: str, scope: Scope) -> None:
        """Disable (and end every session of) or enable an account."""
        now = self._clock.now()
        async with self.database.engine.begin() as connection:
            result = await connection.execute(
                update(users)
                .where(users.c.id == user_id)
                .values(disabled=disabled, updated_at=now)
                .returning(users.c.id)
            )
            if result.first() is None:
                raise NotFound
            revoked = (
                await self.sessions.revoke_all(connection, user_id, reason=RevokeReason.DISABLED)
                if disabled
                else []
            )
        self.sessions.after_revoke_all(revoked, user_id, RevokeReason.DISABLED, scope, actor)
        event = (
            EventType.IDENTITY_ACCOUNT_DISABLED if disabled else EventType.IDENTITY_ACCOUNT_ENABLED
        )
        self._record(scope, event, user_id, actor)

    async def disable(self, user_id: str, *, actor: str, scope: Scope) -> None:
        await self.set_disabled(user_id, disabled=True, actor=actor, scope=scope)

    async def enable(self, user_id: str, *, actor: str, scope: Scope) -> None:
        await self.set_disabled(user_id, disabled=False, actor=actor, scope=scope)

    async def unlock(self, user_id: str, *, actor: str, scope: Scope) -> None:
        user = await self.get(user_id)
        await self.guard.unlock(
            user.email_normalized, scope, user_id=user.id, actor=actor, reason="admin"
        )

    async def revoke_sessions(self, user_id: str, *, actor: str, scope: Scope) -> None:
        await self.get(user_id)
        async with self.database.engine.begin() as connection:
            revoked = await self.sessions.revoke_all(connection, user_id, reason=RevokeReason.ADMIN)
        self.sessions.after_revoke_all(revoked, user_id, RevokeReason.ADMIN, scope, actor)

    async def force_password_reset(self, user_id: str, *, actor: str, scope: Scope) -> None:
        """Make the password unusable, end every session, and mail the user a reset token."""
        user = await self.get(user_id)
        now = self._clock.now()
        async with self.database.engine.begin() as connection:
            # The replaced password stays in the history (when on): the reset must not reuse it.
            size = self.accounts.history_size
            await history.replace_password(connection, user, None, size, now)
            revoked = await self.sessions.revoke_all(connection, user.id, reason=RevokeReason.ADMIN)
            ttl = self.accounts.reset_ttl
            token = await tokens.issue(
                connection, user_id=user.id, purpose=TokenPurpose.PASSWORD_RESET, ttl=ttl, now=now
            )
            message = templates.password_reset(user.email, token, int(ttl.total_seconds()))
            await self.accounts.outbox.enqueue(connection, message)
        self.accounts.outbox.wake()
        self.sessions.after_revoke_all(revoked, user.id, RevokeReason.ADMIN, scope, actor)
        self._record(scope, EventType.IDENTITY_PASSWORD_RESET_FORCED, user.id, actor)

    def _record(self, scope: Scope, type_: EventType, user_id: str, actor: str) -> None:
        record_from_scope(
            self._audit,
            scope,
            type_,
            Outcome.SUCCESS,
            actor=actor,
            subject=f"user:{user_id}",
            reason="admin",
            clock=self._clock,
        )
