"""The multi-factor service: enrollment, login challenges, step-up and the admin reset.

Every code check goes through :class:`~bastion.identity.mfa.attempts.Attempts` (failure backoff
per user and per address, audit of each failure).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any

from sqlalchemy import ColumnElement, Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from bastion.audit.events import EventType, Outcome
from bastion.audit.interfaces import AuditRecorder
from bastion.clock import Clock
from bastion.crypto import EnvelopeCipher
from bastion.identity.accounts.guard import CredentialGuard, client_ip_of
from bastion.identity.accounts.users import User, get_user
from bastion.identity.mail.services import Outbox
from bastion.identity.mfa import challenges, factors, mail, totp
from bastion.identity.mfa.attempts import (
    AMR_OF,
    CODE_METHODS,
    Attempts,
    Method,
    Refused,
    require,
    user_agent,
)
from bastion.identity.mfa.challenges import Challenge, PendingLogin
from bastion.identity.mfa.enrolled import EnrollmentRead, MfaStatus, ask_each, holds_factor
from bastion.identity.mfa.errors import (
    FactorAlreadyEnrolled,
    InvalidChallenge,
    InvalidMfaCode,
    MfaError,
    NoFactor,
    NoPendingEnrollment,
    SecondFactorRequired,
)
from bastion.identity.mfa.factors import TotpState, Verdict
from bastion.identity.mfa.interfaces import (
    FactorSource,
    FactorVerifier,
    SqlEnrollment,
    SyncEnrollment,
)
from bastion.identity.mfa.session_auth import SessionAuth, mark_authenticated
from bastion.identity.mfa.settings import MfaSettings
from bastion.identity.sessions.services import IssuedTokens, RevokeReason, SessionService
from bastion.identity.tokens.claims import AssuranceLevel, AuthMethod
from bastion.identity.tokens.errors import InvalidToken, InvalidTokenReason
from bastion.protections.ratelimit.interfaces import BackoffStore
from bastion.storage import Database

__all__ = ["CompletedLogin", "Method", "MfaService", "MfaStatus", "TotpEnrollment"]

Scope = Mapping[str, Any]
#: ``(connection, user_id) -> bool`` (see :meth:`MfaService.factor_check`).
FactorCheck = Callable[[Connection, str], bool]


@dataclass(frozen=True, slots=True)
class TotpEnrollment:
    """Shown once to the user: the secret, its ``otpauth://`` URI and the URI as an SVG QR."""

    secret: str
    uri: str
    qr_svg: str


@dataclass(frozen=True, slots=True)
class CompletedLogin:
    user: User
    tokens: IssuedTokens
    transport: str
    method: Method


class MfaService:
    """Second factors of accounts, and what logins and sensitive operations ask of them."""

    def __init__(
        self,
        database: Database,
        *,
        settings: MfaSettings,
        cipher: EnvelopeCipher,
        sessions: SessionService,
        outbox: Outbox,
        guard: CredentialGuard,
        backoff_store: BackoffStore,
        audit: AuditRecorder,
        clock: Clock,
    ) -> None:
        self.database = database
        self.settings = settings
        self.sessions = sessions
        self.outbox = outbox
        self.guard = guard
        self._cipher = cipher
        self._audit = audit
        self.clock = clock
        self.attempts = Attempts(backoff_store, guard=guard, audit=audit, clock=clock)
        #: Records an audit event about a user (shared with the step-up module).
        self.record = self.attempts.record
        self.factor_sources: list[FactorSource] = []
        #: See :meth:`factor_check`; None once a source without ``SyncEnrollment`` registers.
        self._factor_check: FactorCheck | None = partial(holds_factor, ())
        #: See :meth:`factor_conditions`; None once a source without ``SqlEnrollment`` does.
        self._factor_conditions: tuple[ColumnElement[bool], ...] | None = (factors.TOTP_ACTIVE,)
        #: See :meth:`enrollment_read`; None when :meth:`factor_conditions` is.
        self._enrollment_read: EnrollmentRead | None = EnrollmentRead(())

    # -- factors known to the policy ----------------------------------------------------------
    def register_factor_source(self, source: FactorSource) -> None:
        """Make another kind of factor (passkeys) count for the policy, login and reset."""
        self.factor_sources.append(source)
        checks = [s.holds_factor for s in self.factor_sources if isinstance(s, SyncEnrollment)]
        synchronous = len(checks) == len(self.factor_sources)
        self._factor_check = partial(holds_factor, tuple(checks)) if synchronous else None
        sql = [
            (s.methods, s.enrolled_condition())
            for s in self.factor_sources
            if isinstance(s, SqlEnrollment)
        ]
        if synchronous and len(sql) == len(self.factor_sources):
            self._factor_conditions = (factors.TOTP_ACTIVE, *(c for _, c in sql))
            self._enrollment_read = EnrollmentRead(sql)
        else:
            self._factor_conditions = self._enrollment_read = None

    def factor_check(self) -> FactorCheck | None:
        """``check(connection, user_id)``: whether the account has a second factor (what
        :meth:`begin_login` asks first), on a synchronous connection: a password login asks it
        inside the transaction that starts its session. None when a registered factor source
        cannot be asked that way (the login then calls :meth:`require_second_factor` first)."""
        return self._factor_check

    def factor_conditions(self) -> tuple[ColumnElement[bool], ...] | None:
        """:meth:`factor_check` as SQL conditions on the user of the bound parameter ``uid``
        (any true: the account has a factor), for a password login to fold into the statement
        that starts its session; the same tuple until a factor source registers. None when a
        registered source is not a ``SqlEnrollment`` (or :meth:`factor_check` is None)."""
        return self._factor_conditions

    def enrollment_read(self) -> EnrollmentRead | None:
        """``read(connection, user_id)``: :meth:`status` in one statement on a synchronous
        connection (to fold into another unit of work's reads); None when a registered factor
        source is not a ``SqlEnrollment`` (then only :meth:`status` and :meth:`methods_of`)."""
        return self._enrollment_read

    async def _methods_in(self, connection: AsyncConnection, user_id: str) -> list[str]:
        """:meth:`methods_of` in the caller's transaction (one statement when it can be)."""
        read = self._enrollment_read
        if read is not None:
            return (await connection.run_sync(read, user_id)).methods
        return (await ask_each(self.factor_sources, connection, user_id)).methods

    async def methods_of(self, user_id: str) -> list[str]:
        """The methods that can complete a challenge of this user; empty: no second factor."""
        return (await self.status(user_id)).methods

    async def has_factor(self, user_id: str) -> bool:
        return bool(await self.methods_of(user_id))

    def requires_factor(self, user: User) -> bool:
        """Whether the policy demands a second factor of this account."""
        return self.settings.required_for_all or (
            user.is_admin and self.settings.required_for_admins
        )

    async def status(self, user_id: str) -> MfaStatus:
        """The user's factors now: a pure read (on PostgreSQL, one statement outside any
        transaction, one round trip), never what a write relies on."""
        read = self._enrollment_read
        if read is not None:
            return await self.database.read(partial(read, user_id=user_id))
        async with self.database.engine.connect() as connection:
            return await ask_each(self.factor_sources, connection, user_id)

    # -- TOTP enrollment ------------------------------------------------------------------------
    async def enroll_totp(self, user: User, scope: Scope) -> TotpEnrollment:
        """Start (or restart) an enrollment; raises ``FactorAlreadyEnrolled`` when active."""
        secret = totp.new_secret()
        async with self.database.engine.begin() as connection:
            if await factors.totp_state(connection, user.id) is TotpState.ACTIVE:
                raise FactorAlreadyEnrolled
            sealed = factors.seal_secret(self._cipher, user.id, secret)
            await factors.put_pending_totp(connection, user.id, sealed, self.clock.now())
        uri = totp.provisioning_uri(secret, account=user.email, issuer=self.settings.totp_issuer)
        self.record(scope, EventType.IDENTITY_MFA_TOTP_ENROLLMENT_STARTED, user.id)
        return TotpEnrollment(secret=secret, uri=uri, qr_svg=totp.qr_svg(uri))

    async def activate_totp(
        self, user: User, session_id: str, code: str, scope: Scope
    ) -> list[str] | None:
        """Activate the pending enrollment with its first correct code. The session counts as
        authenticated with it (aal2). Returns fresh recovery codes when the user had none.

        Raises ``NoPendingEnrollment``, ``InvalidMfaCode`` or ``TooManyAttempts``.
        """
        await self.attempts.check(user.id, Method.OTP, scope)
        now = self.clock.now()
        # A pure read, for the answer only: the activation below is a conditional UPDATE of a
        # pending enrollment (refused as a wrong code if it went meanwhile).
        state = await self.database.read(partial(factors.read_totp_state, user_id=user.id))
        if state is not TotpState.PENDING:
            raise NoPendingEnrollment
        try:
            async with self.database.engine.begin() as connection:
                require(await factors.activate_totp(connection, self._cipher, user.id, code, now))
                codes = None
                if not await factors.remaining_recovery_codes(connection, user.id):
                    codes = await factors.replace_recovery_codes(connection, user.id, now)
                await self._mark(connection, session_id, user.id, [AuthMethod.OTP])
                await self.outbox.enqueue(
                    connection, mail.factor_changed(user.email, "an authenticator app was added")
                )
        except Refused as refused:
            await self.attempts.failed(user.id, Method.OTP, refused, scope, purpose="activate")
            raise InvalidMfaCode from None
        await self.attempts.succeeded(user.id, Method.OTP)
        self.outbox.wake()
        self.record(scope, EventType.IDENTITY_MFA_TOTP_ACTIVATED, user.id)
        if codes is not None:
            self.record(scope, EventType.IDENTITY_MFA_RECOVERY_CODES_GENERATED, user.id)
        return codes

    async def remove_totp(self, user: User, scope: Scope) -> None:
        """Remove the authenticator app; without any factor left, recovery codes go too."""
        async with self.database.engine.begin() as connection:
            if not await factors.delete_totp(connection, user.id):
                raise NoFactor
            if not await self._methods_in(connection, user.id):
                await factors.delete_recovery_codes(connection, user.id)
            await self.outbox.enqueue(
                connection, mail.factor_changed(user.email, "the authenticator app was removed")
            )
        self.outbox.wake()
        self.record(scope, EventType.IDENTITY_MFA_TOTP_REMOVED, user.id)

    async def regenerate_recovery_codes(self, user: User, scope: Scope) -> list[str]:
        """A new set of codes; the old set stops working. Needs a second factor."""
        async with self.database.engine.begin() as connection:
            if not await self._methods_in(connection, user.id):
                raise NoFactor
            codes = await factors.replace_recovery_codes(connection, user.id, self.clock.now())
            await self.outbox.enqueue(
                connection, mail.factor_changed(user.email, "new recovery codes were generated")
            )
        self.outbox.wake()
        self.record(scope, EventType.IDENTITY_MFA_RECOVERY_CODES_GENERATED, user.id)
        return codes

    async def reset(self, user: User, *, actor: str, scope: Scope) -> None:
        """Admin reset: remove every factor and recovery code, end every session, tell the user."""
        async with self.database.engine.begin() as connection:
            await factors.delete_totp(connection, user.id)
            await factors.delete_recovery_codes(connection, user.id)
            removed = {s.name: await s.remove_all(connection, user.id) for s in self.factor_sources}
            revoked = await self.sessions.revoke_all(connection, user.id, reason=RevokeReason.ADMIN)
            await self.outbox.enqueue(connection, mail.mfa_reset(user.email))
        self.outbox.wake()
        self.sessions.after_revoke_all(revoked, user.id, RevokeReason.ADMIN, scope, actor)
        self.record(
            scope, EventType.IDENTITY_MFA_RESET, user.id, actor=actor, details={"removed": removed}
        )

    # -- login challenges -----------------------------------------------------------------------
    async def begin_login(self, user: User, *, transport: str, scope: Scope) -> Challenge | None:
        """After a correct password: a challenge if the account has a second factor."""
        issued = await self._issue_challenge(user, transport=transport, scope=scope)
        return issued[0] if issued is not None else None

    async def _issue_challenge(
        self, user: User, *, transport: str, scope: Scope
    ) -> tuple[Challenge, list[str]] | None:
        """:meth:`begin_login`'s challenge and the methods that can complete it."""
        # Most accounts have none: asked in a pure read first (no transaction on PostgreSQL),
        # so that their logins open no write transaction here. An account with a factor is
        # asked again below, in the transaction that issues the challenge.
        if not await self.methods_of(user.id):
            return None
        async with self.database.engine.begin() as connection:
            methods = await self._methods_in(connection, user.id)
            if not methods:
                return None
            ttl = timedelta(seconds=self.settings.challenge_ttl_seconds)
            challenge = await challenges.issue(
                connection, user.id, transport=transport, ttl=ttl, now=self.clock.now()
            )
        self.record(
            scope, EventType.IDENTITY_MFA_CHALLENGE_ISSUED, user.id, details={"methods": methods}
        )
        return challenge, methods

    async def require_second_factor(self, user: User, *, transport: str, scope: Scope) -> None:
        """The :class:`~bastion.identity.sessions.login.SecondFactorGate` of password logins."""
        issued = await self._issue_challenge(user, transport=transport, scope=scope)
        if issued is not None:
            challenge, methods = issued  # as the challenge's transaction saw them
            raise SecondFactorRequired(
                challenge_token=challenge.token, expires_in=challenge.expires_in, methods=methods
            )

    async def peek_challenge(self, token: str, scope: Scope | None = None) -> PendingLogin:
        """The live challenge, unused; raises ``InvalidChallenge``. A pure read (no
        transaction on PostgreSQL): :meth:`complete_challenge` consumes it atomically."""
        pending = await self.database.read(
            partial(challenges.peek, token=token, now=self.clock.now())
        )
        if pending is None:
            self.record(
                scope or {},
                EventType.IDENTITY_MFA_FAILED,
                None,
                outcome=Outcome.FAILURE,
                reason="challenge_invalid",
            )
            raise InvalidChallenge
        return pending

    async def complete_challenge(
        self,
        token: str,
        method: Method | str,
        *,
        code: str | None = None,
        verifier: FactorVerifier | None = None,
        scope: Scope,
        pending: PendingLogin | None = None,
    ) -> CompletedLogin:
        """Prove the second factor of a login and start its session (amr pwd + method + mfa,
        acr aal2); ``pending``: :meth:`peek_challenge`'s answer if the caller has it. Raises
        ``InvalidChallenge``, ``InvalidMfaCode`` (or the verifier's error), ``TooManyAttempts``."""
        method = Method(method)
        if pending is None:
            pending = await self.peek_challenge(token, scope)
        user_id = pending.user_id
        await self.attempts.check(user_id, method, scope)
        now = self.clock.now()
        try:
            async with self.database.engine.begin() as connection:
                consumed = await challenges.consume(connection, token, now)
                if consumed is None or consumed.id != pending.id:  # used or expired meanwhile
                    raise InvalidChallenge  # (or a caller's ``pending`` of another token)
                user = await get_user(connection, user_id)
                if user is None or not user.can_log_in:
                    raise InvalidChallenge
                await self._prove(connection, user_id, method, code, verifier)
        except Refused as refused:
            async with self.database.engine.begin() as connection:
                await challenges.count_failure(
                    connection,
                    pending.id,
                    max_failures=self.settings.challenge_max_failures,
                    now=now,
                )
            await self.attempts.failed(user_id, method, refused, scope, purpose="login")
            raise refused.error or InvalidMfaCode() from None
        await self.attempts.succeeded(user_id, method)
        tokens = await self.sessions.create(
            user.id,
            amr=[AuthMethod.PASSWORD, AMR_OF[method], AuthMethod.MFA],
            acr=AssuranceLevel.AAL2,
            transport=pending.transport,
            ip=client_ip_of(scope),
            user_agent=user_agent(scope),
        )
        details = {"method": method.value, "session_id": tokens.session_id}
        self.record(scope, EventType.IDENTITY_MFA_SUCCEEDED, user.id, details=details)
        self.record(scope, EventType.IDENTITY_LOGIN_SUCCEEDED, user.id, details=details)
        await self._after_recovery_code(user, method, scope)
        return CompletedLogin(user, tokens, pending.transport, method)

    # -- step-up --------------------------------------------------------------------------------
    async def verify_for_session(
        self,
        user: User,
        session_id: str,
        method: Method | str,
        *,
        code: str | None = None,
        verifier: FactorVerifier | None = None,
        scope: Scope,
    ) -> SessionAuth:
        """Re-authenticate a live session with a second factor (step-up): the session gets
        the method in ``amr``, acr aal2 and a fresh ``auth_time``. Raises ``InvalidMfaCode``
        (or the verifier's error), ``TooManyAttempts``, ``InvalidToken`` (session ended)."""
        method = Method(method)
        await self.attempts.check(user.id, method, scope)
        try:
            async with self.database.engine.begin() as connection:
                await self._prove(connection, user.id, method, code, verifier)
                state = await self._mark(connection, session_id, user.id, [AMR_OF[method]])
        except Refused as refused:
            await self.attempts.failed(user.id, method, refused, scope, purpose="step_up")
            raise refused.error or InvalidMfaCode() from None
        await self.attempts.succeeded(user.id, method)
        self.record(
            scope,
            EventType.IDENTITY_STEP_UP_SUCCEEDED,
            user.id,
            details={"session_id": session_id, "method": method.value},
        )
        await self._after_recovery_code(user, method, scope)
        return state

    async def mark_authenticated(
        self,
        session_id: str,
        user_id: str,
        methods: Sequence[AuthMethod],
        *,
        scope: Scope,
        level: AssuranceLevel | None = None,
    ) -> SessionAuth:
        """Record that the session's user just proved ``methods`` (see :mod:`.session_auth`).
        ``level`` defaults to aal2 for a possession factor, aal1 for a password alone."""
        async with self.database.engine.begin() as connection:
            state = await self._mark(connection, session_id, user_id, methods, level)
        self.record(
            scope,
            EventType.IDENTITY_STEP_UP_SUCCEEDED,
            user_id,
            details={"session_id": session_id, "methods": [AuthMethod(m).value for m in methods]},
        )
        return state

    async def _mark(
        self,
        connection: AsyncConnection,
        session_id: str,
        user_id: str,
        methods: Sequence[AuthMethod],
        level: AssuranceLevel | None = None,
    ) -> SessionAuth:
        if level is None:
            only_password = all(AuthMethod(m) is AuthMethod.PASSWORD for m in methods)
            level = AssuranceLevel.AAL1 if only_password else AssuranceLevel.AAL2
        state = await mark_authenticated(
            connection,
            session_id=session_id,
            user_id=user_id,
            methods=methods,
            level=level,
            now=self.clock.now(),
        )
        if state is None:
            raise InvalidToken(InvalidTokenReason.SESSION_REVOKED)
        return state

    # -- shared ---------------------------------------------------------------------------------
    async def _prove(
        self,
        connection: AsyncConnection,
        user_id: str,
        method: Method,
        code: str | None,
        verifier: FactorVerifier | None,
    ) -> None:
        """Raises ``Refused`` unless the factor is proven (in the caller's transaction)."""
        now = self.clock.now()
        if method in CODE_METHODS:
            if code is None:
                raise Refused(Verdict(ok=False, reason=factors.Reason.MALFORMED))
            if method is Method.OTP:
                verdict = await factors.verify_totp(connection, self._cipher, user_id, code, now)
            elif not await self._methods_in(connection, user_id):
                verdict = Verdict(ok=False, reason=factors.Reason.NOT_ENROLLED)
            else:
                verdict = await factors.use_recovery_code(connection, user_id, code, now)
            require(verdict)
            return
        if verifier is None:
            raise ValueError(f"method {method.value} needs a verifier")
        try:
            await verifier(connection, user_id)
        except MfaError as exc:
            raise Refused(Verdict(ok=False, reason=None), exc) from None

    async def _after_recovery_code(self, user: User, method: Method, scope: Scope) -> None:
        if method is not Method.RECOVERY:
            return
        async with self.database.engine.begin() as connection:
            remaining = await factors.remaining_recovery_codes(connection, user.id)
            await self.outbox.enqueue(connection, mail.recovery_code_used(user.email, remaining))
        self.outbox.wake()
        self.record(
            scope,
            EventType.IDENTITY_MFA_RECOVERY_CODE_USED,
            user.id,
            details={"remaining": remaining},
        )
