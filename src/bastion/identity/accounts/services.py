"""Accounts: first administrator, registration, email verification, password reset and change,
profile and email change.

No user enumeration (issue 4 §3): registration and the password-reset request answer 202 before
any account-dependent work (:mod:`bastion.identity.jobs`), so their answers are identical in
status, body, headers and time; the account owner learns of the attempt by mail. Email
verification and reset tokens are refused with one opaque ``token_invalid``.

Account takeover through a pending registration ("pre-hijacking"): an account is usable only
once its address is confirmed, and the password that becomes the account's is the one chosen in
the registration whose mailed token was used (stored hashed with the token). Confirming voids
every other pending token, so a stranger who registered the address first gains nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from functools import partial
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from bastion.audit.context import record_from_scope
from bastion.audit.events import EventType, Outcome
from bastion.audit.interfaces import AuditRecorder
from bastion.clock import Clock
from bastion.http.errors import NotFound
from bastion.identity.accounts import history, tokens
from bastion.identity.accounts.guard import CredentialGuard, email_reference
from bastion.identity.accounts.models import users
from bastion.identity.accounts.tokens import TokenPurpose
from bastion.identity.accounts.users import (
    User,
    find_by_email,
    get_user,
    insert_user,
    read_user,
)
from bastion.identity.emails import normalize_email
from bastion.identity.errors import (
    AccountExists,
    InvalidAccountToken,
    InvalidCredentials,
    PasswordRejected,
)
from bastion.identity.fields import is_plain_id
from bastion.identity.jobs import BackgroundJobs
from bastion.identity.mail import templates
from bastion.identity.mail.services import Outbox
from bastion.identity.passwords import PasswordService, Rejected, UserInfo
from bastion.identity.sessions.services import RevokeReason, SessionService
from bastion.identity.setup_token import SetupTokenService
from bastion.storage import Database

__all__ = ["AccountService", "snapshot"]

Scope = Mapping[str, Any]
_EMAIL_TOKENS = (TokenPurpose.VERIFY_EMAIL, TokenPurpose.CHANGE_EMAIL)


def snapshot(scope: Scope) -> dict[str, Any]:
    """What audit events need of a request, kept for work done after its answer."""
    headers = [(k, v) for k, v in scope.get("headers") or () if k.lower() == b"user-agent"]
    return {
        "state": dict(scope.get("state") or {}),
        "headers": headers,
        "client": scope.get("client"),
    }


class AccountService:
    """The account flows, over the database, the password service and the mail outbox."""

    def __init__(
        self,
        database: Database,
        *,
        passwords: PasswordService,
        outbox: Outbox,
        sessions: SessionService,
        guard: CredentialGuard,
        setup_tokens: SetupTokenService,
        jobs: BackgroundJobs,
        audit: AuditRecorder,
        clock: Clock,
        verification_ttl: timedelta,
        reset_ttl: timedelta,
    ) -> None:
        self.database = database
        self.passwords = passwords
        self.outbox = outbox
        self.sessions = sessions
        self.guard = guard
        self.setup_tokens = setup_tokens
        self.jobs = jobs
        self._audit = audit
        self._clock = clock
        self.verification_ttl = verification_ttl
        self.reset_ttl = reset_ttl
        #: Recent passwords a new one must differ from (0: the option is off).
        self.history_size = passwords.settings.history_size
        #: Called with the first administrator's id once created: grants the ``admin`` role
        #: in Bastion's authorization store (bastion.authz.builtin; set by the wiring).
        self.on_admin_created: Callable[[str, Scope], Awaitable[None]] | None = None

    # -- shared ----------------------------------------------------------------------------
    async def check_new_password(
        self, password: str, *, email: str, name: str | None, previous: Sequence[str] = ()
    ) -> None:
        """Raises :class:`PasswordRejected` with the policy's reasons. ``previous``: the hashes
        of the user's recent passwords, newest first (:mod:`.history`)."""
        info = UserInfo(email=email, names=(name,) if name else ())
        decision = await self.passwords.check_new_password(
            password, user=info, previous_hashes=previous
        )
        if isinstance(decision, Rejected):
            raise PasswordRejected(decision.message, [r.value for r in decision.reasons])

    async def get(self, user_id: str) -> User:
        """The user; raises ``NotFound``."""
        if not is_plain_id(user_id):
            raise NotFound
        user = await self.database.read(partial(read_user, user_id=user_id))
        if user is None:
            raise NotFound
        return user

    async def verify_current_password(
        self, user: User, password: str, scope: Scope, *, event: EventType
    ) -> None:
        """Re-authentication for a sensitive change, under the login backoff (otherwise this
        would be a way around it). Raises ``TooManyAttempts`` or ``InvalidCredentials``."""
        await self.guard.check(user.email_normalized, scope)
        result = await self.passwords.verify(user.password_hash, password)
        if not result.ok:
            await self.guard.failed(
                user.email_normalized, scope, user_id=user.id, reason="wrong_password", event=event
            )
            raise InvalidCredentials
        await self.guard.succeeded(user.email_normalized)

    # -- first administrator ---------------------------------------------------------------
    async def setup_admin(
        self, *, setup_token: str, email: str, password: str, display_name: str, scope: Scope
    ) -> User:
        """Create the first administrator with a setup token.

        Raises ``PasswordRejected`` (checked first: a refused password leaves the token
        usable), ``InvalidSetupToken`` or ``AccountExists``.
        """
        await self.check_new_password(password, email=email, name=display_name)
        password_hash = await self.passwords.hash(password)
        now = self._clock.now()
        async with self.database.engine.begin() as connection:
            # Consumed in this transaction: if creating the account fails, the token stays.
            await self.setup_tokens.consume(setup_token, scope=scope, connection=connection)
            if await find_by_email(connection, normalize_email(email)) is not None:
                raise AccountExists
            user = await insert_user(
                connection,
                email=email,
                email_normalized=normalize_email(email),
                display_name=display_name,
                password_hash=password_hash,
                now=now,
                is_admin=True,
                email_verified=True,
            )
        self._record(scope, EventType.IDENTITY_SETUP_COMPLETED, user_id=user.id)
        if self.on_admin_created is not None:
            await self.on_admin_created(user.id, scope)
        return user

    async def setup_complete(self) -> bool:
        return await self.setup_tokens.is_setup_complete()

    # -- registration ----------------------------------------------------------------------
    async def register(self, *, email: str, password: str, display_name: str, scope: Scope) -> None:
        """Accept a registration. Raises ``PasswordRejected`` (which depends on the request
        only, never on the account); everything else happens after the answer."""
        await self.check_new_password(password, email=email, name=display_name)
        saved = snapshot(scope)

        async def job() -> None:
            await self._register(email, password, display_name, saved)

        self.jobs.submit(job, "register")

    async def _register(self, email: str, password: str, display_name: str, scope: Scope) -> None:
        # Hash for every path: the work must not depend on whether the account exists.
        password_hash = await self.passwords.hash(password)
        try:
            await self._register_with(email, password_hash, display_name, scope)
        except IntegrityError:
            # A concurrent registration took the address between lookup and insert.
            await self._register_with(email, password_hash, display_name, scope)
        self.outbox.wake()

    async def _register_with(
        self, email: str, password_hash: str, display_name: str, scope: Scope
    ) -> None:
        now = self._clock.now()
        normalized = normalize_email(email)
        async with self.database.engine.begin() as connection:
            user = await find_by_email(connection, normalized)
            if user is None:
                user = await insert_user(
                    connection,
                    email=email,
                    email_normalized=normalized,
                    display_name=display_name,
                    password_hash=None,
                    now=now,
                )
                event, reason = EventType.IDENTITY_ACCOUNT_REGISTERED, None
            else:
                event = EventType.IDENTITY_ACCOUNT_REGISTRATION_REPEATED
                reason = "pending" if not user.email_verified else "exists"
            if user.email_verified:
                # The owner learns of the attempt; the requester learns nothing.
                await self.outbox.enqueue(connection, templates.registration_attempt(user.email))
            else:
                token = await tokens.issue(
                    connection,
                    user_id=user.id,
                    purpose=TokenPurpose.VERIFY_EMAIL,
                    ttl=self.verification_ttl,
                    now=now,
                    password_hash=password_hash,
                )
                message = templates.verify_email(user.email, token, _seconds(self.verification_ttl))
                await self.outbox.enqueue(connection, message)
        self._record(scope, event, user_id=user.id, reason=reason)

    async def verify_email(self, token: str, scope: Scope) -> None:
        """Confirm an address (registration or email change). Raises ``InvalidAccountToken``."""
        try:
            try:
                async with self.database.engine.begin() as connection:
                    user, event = await self._use_email_token(connection, token, self._clock.now())
            except IntegrityError:
                # Two confirmations raced for one address: the unique index let one win; the
                # other is rolled back whole (its token stays unused) and refused like any bad
                # token, never a 500.
                raise InvalidAccountToken from None
        except InvalidAccountToken:
            await self._token_rejected(token, _EMAIL_TOKENS, scope)
            raise
        self.outbox.wake()
        self._record(scope, event, user_id=user.id)

    async def _use_email_token(
        self, connection: AsyncConnection, token: str, now: Any
    ) -> tuple[User, EventType]:
        row = await tokens.consume(connection, token, _EMAIL_TOKENS, now)
        user = await get_user(connection, row.user_id) if row is not None else None
        if row is None or user is None:
            raise InvalidAccountToken
        if row.purpose == TokenPurpose.CHANGE_EMAIL:
            await self._switch_email(connection, user, row.new_email, now)
            return user, EventType.IDENTITY_EMAIL_CHANGED
        await self._confirm(connection, user, row.password_hash, now)
        return user, EventType.IDENTITY_EMAIL_VERIFIED

    async def _confirm(
        self, connection: AsyncConnection, user: User, password_hash: str | None, now: Any
    ) -> None:
        values: dict[str, Any] = {"email_verified": True, "updated_at": now}
        if password_hash is not None:
            values |= {"password_hash": password_hash, "password_changed_at": now}
        await connection.execute(update(users).where(users.c.id == user.id).values(**values))
        # Other pending registrations of this address (perhaps a stranger's) are void now.
        await tokens.consume_all(connection, user.id, [TokenPurpose.VERIFY_EMAIL], now)

    async def _switch_email(
        self, connection: AsyncConnection, user: User, new_email: str | None, now: Any
    ) -> None:
        if new_email is None:  # pragma: no cover - change tokens always carry the address
            raise InvalidAccountToken
        normalized = normalize_email(new_email)
        other = await find_by_email(connection, normalized)
        if other is not None and other.id != user.id:
            raise InvalidAccountToken  # taken since the change was requested
        await connection.execute(
            update(users)
            .where(users.c.id == user.id)
            .values(
                email=new_email, email_normalized=normalized, email_verified=True, updated_at=now
            )
        )
        await tokens.consume_all(connection, user.id, [TokenPurpose.CHANGE_EMAIL], now)
        await self.outbox.enqueue(connection, templates.email_changed(user.email))

    async def _token_rejected(
        self, token: str, purposes: tuple[TokenPurpose, ...], scope: Scope
    ) -> None:
        async with self.database.engine.connect() as connection:
            reason, user_id = await tokens.why_rejected(connection, token, purposes)
        self._record(
            scope,
            EventType.IDENTITY_ACCOUNT_TOKEN_REJECTED,
            outcome=Outcome.FAILURE,
            user_id=user_id,
            reason=reason.value,
            details={"purposes": [p.value for p in purposes]},
        )

    # -- password reset --------------------------------------------------------------------
    async def forgot_password(self, email: str, scope: Scope) -> None:
        """Mail a reset token if the account exists; all of it after the answer."""
        saved = snapshot(scope)

        async def job() -> None:
            await self._forgot(email, saved)

        self.jobs.submit(job, "forgot_password")

    async def _forgot(self, email: str, scope: Scope) -> None:
        now = self._clock.now()
        normalized = normalize_email(email)
        async with self.database.engine.begin() as connection:
            user = await find_by_email(connection, normalized)
            if user is None or user.disabled:
                return
            token = await tokens.issue(
                connection,
                user_id=user.id,
                purpose=TokenPurpose.PASSWORD_RESET,
                ttl=self.reset_ttl,
                now=now,
            )
            message = templates.password_reset(user.email, token, _seconds(self.reset_ttl))
            await self.outbox.enqueue(connection, message)
        self.outbox.wake()
        self._record(scope, EventType.IDENTITY_PASSWORD_RESET_REQUESTED, user_id=user.id)

    async def reset_password(self, token: str, new_password: str, scope: Scope) -> None:
        """Set a new password with a reset token; ends every session and notifies by mail.

        Raises ``InvalidAccountToken`` or ``PasswordRejected`` (the token stays usable then).
        """
        purposes = (TokenPurpose.PASSWORD_RESET,)
        now = self._clock.now()
        async with self.database.engine.connect() as connection:
            row = await tokens.peek(connection, token, purposes, now)
            user = await get_user(connection, row.user_id) if row is not None else None
            previous = await history.recent_hashes(connection, user, self.history_size)
        if user is None or user.disabled:
            await self._token_rejected(token, purposes, scope)
            raise InvalidAccountToken
        await self.check_new_password(
            new_password, email=user.email, name=user.display_name, previous=previous
        )
        password_hash = await self.passwords.hash(new_password)
        now = self._clock.now()
        async with self.database.engine.begin() as connection:
            if await tokens.consume(connection, token, purposes, now) is None:
                raise InvalidAccountToken  # used concurrently
            await history.replace_password(connection, user, password_hash, self.history_size, now)
            # The reset mail proved control of the address.
            await connection.execute(
                update(users).where(users.c.id == user.id).values(email_verified=True)
            )
            await tokens.consume_all(
                connection, user.id, [TokenPurpose.PASSWORD_RESET, TokenPurpose.VERIFY_EMAIL], now
            )
            revoked = await self.sessions.revoke_all(
                connection, user.id, reason=RevokeReason.PASSWORD_RESET
            )
            await self.outbox.enqueue(
                connection, templates.password_changed(user.email, reset=True)
            )
        self.outbox.wake()
        self.sessions.after_revoke_all(revoked, user.id, RevokeReason.PASSWORD_RESET, scope)
        self._record(scope, EventType.IDENTITY_PASSWORD_RESET, user_id=user.id)
        await self.guard.unlock(
            user.email_normalized, scope, user_id=user.id, actor=None, reason="password_reset"
        )

    # -- signed-in changes -----------------------------------------------------------------
    async def change_password(
        self, user_id: str, session_id: str, current: str, new: str, scope: Scope
    ) -> None:
        """Change the password; ends the user's other sessions and notifies by mail.

        Raises ``TooManyAttempts``, ``InvalidCredentials`` or ``PasswordRejected``.
        """
        user = await self.get(user_id)
        await self.verify_current_password(
            user, current, scope, event=EventType.IDENTITY_PASSWORD_CHANGE_FAILED
        )
        previous: list[str] = []
        if self.history_size > 0:  # history is off by default: then no connection at all
            async with self.database.engine.connect() as connection:
                previous = await history.recent_hashes(connection, user, self.history_size)
        await self.check_new_password(
            new, email=user.email, name=user.display_name, previous=previous
        )
        password_hash = await self.passwords.hash(new)
        now = self._clock.now()
        async with self.database.engine.begin() as connection:
            await history.replace_password(connection, user, password_hash, self.history_size, now)
            await tokens.consume_all(connection, user.id, [TokenPurpose.PASSWORD_RESET], now)
            revoked = await self.sessions.revoke_all(
                connection, user.id, reason=RevokeReason.PASSWORD_CHANGED, keep=session_id
            )
            await self.outbox.enqueue(
                connection, templates.password_changed(user.email, reset=False)
            )
        self.outbox.wake()
        self.sessions.after_revoke_all(revoked, user.id, RevokeReason.PASSWORD_CHANGED, scope)
        self._record(scope, EventType.IDENTITY_PASSWORD_CHANGED, user_id=user.id)

    async def update_profile(self, user_id: str, *, display_name: str, scope: Scope) -> User:
        now = self._clock.now()
        async with self.database.engine.begin() as connection:
            await connection.execute(
                update(users)
                .where(users.c.id == user_id)
                .values(display_name=display_name, updated_at=now)
            )
            user = await get_user(connection, user_id)
        if user is None:
            raise NotFound
        self._record(
            scope,
            EventType.IDENTITY_PROFILE_UPDATED,
            user_id=user_id,
            details={"fields": ["display_name"]},
        )
        return user

    async def request_email_change(
        self, user_id: str, *, new_email: str, password: str, scope: Scope
    ) -> None:
        """Mail a confirmation token to the new address (and a notice to the old one); the
        address changes when the token is used. Raises ``InvalidCredentials``."""
        user = await self.get(user_id)
        await self.verify_current_password(
            user, password, scope, event=EventType.IDENTITY_PASSWORD_CHANGE_FAILED
        )
        normalized = normalize_email(new_email)
        if normalized == user.email_normalized:
            return
        now = self._clock.now()
        async with self.database.engine.begin() as connection:
            if await find_by_email(connection, normalized) is not None:
                # Same answer as a free address; that address's owner is told instead.
                await self.outbox.enqueue(connection, templates.registration_attempt(new_email))
            else:
                token = await tokens.issue(
                    connection,
                    user_id=user.id,
                    purpose=TokenPurpose.CHANGE_EMAIL,
                    ttl=self.verification_ttl,
                    now=now,
                    new_email=new_email,
                )
                ttl = _seconds(self.verification_ttl)
                await self.outbox.enqueue(
                    connection, templates.confirm_new_email(new_email, token, ttl)
                )
                await self.outbox.enqueue(connection, templates.email_change_requested(user.email))
        self.outbox.wake()
        self._record(
            scope,
            EventType.IDENTITY_EMAIL_CHANGE_REQUESTED,
            user_id=user.id,
            details={"new_email_ref": email_reference(normalized)},
        )

    # -- audit -----------------------------------------------------------------------------
    def _record(
        self,
        scope: Scope,
        type_: EventType,
        *,
        outcome: Outcome = Outcome.SUCCESS,
        user_id: str | None = None,
        actor: str | None = None,
        reason: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        subject = f"user:{user_id}" if user_id else None
        record_from_scope(
            self._audit,
            scope,
            type_,
            outcome,
            actor=actor or subject,
            subject=subject,
            reason=reason,
            details=details,
            clock=self._clock,
        )


def _seconds(delta: timedelta) -> int:
    return int(delta.total_seconds())
