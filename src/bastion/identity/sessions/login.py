"""Password login: one answer for every failure, the same work for every account.

Unknown address, wrong password, unconfirmed or disabled account: all answer 401
``invalid_credentials`` after one password verification (a dummy one when there is no hash),
so neither the answer nor its timing tells which accounts exist. The backoff of
:class:`~bastion.identity.accounts.guard.CredentialGuard` is keyed by the normalised address
whether or not an account has it, so lockout answers are identical too. A correct password over
an outdated hash (legacy algorithm or parameters) is rehashed on the spot.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

from sqlalchemy import ColumnElement, Connection, update

from bastion.audit.context import record_from_scope
from bastion.audit.events import EventType, Outcome
from bastion.audit.interfaces import AuditRecorder
from bastion.clock import Clock
from bastion.identity.accounts.guard import CredentialGuard, client_ip_of
from bastion.identity.accounts.models import users
from bastion.identity.accounts.users import User, read_user_by_email, read_user_by_email_unit
from bastion.identity.emails import normalize_email
from bastion.identity.errors import InvalidCredentials
from bastion.identity.passwords import PasswordService
from bastion.identity.sessions._statements import login_new_session_unless
from bastion.identity.sessions.services import IssuedTokens, SessionService
from bastion.identity.tokens.claims import AssuranceLevel, AuthMethod
from bastion.storage import Database
from bastion.storage.prepared import PreparedStatement

__all__ = ["LoginResult", "LoginService", "SecondFactorGate"]

Scope = Mapping[str, Any]


class SecondFactorGate(Protocol):
    """What a correct password leads to for an account with a second factor
    (:class:`bastion.identity.mfa.services.MfaService`)."""

    def factor_check(self) -> Callable[[Connection, str], bool] | None:
        """``check(connection, user_id)``: whether the account has a second factor, asked on
        a synchronous connection inside the transaction that starts the session; None when the
        gate cannot be asked that way."""
        ...

    def factor_conditions(self) -> tuple[ColumnElement[bool], ...] | None:
        """``factor_check`` as SQL conditions on the bound parameter ``uid`` (any true: a
        factor), the same tuple until the gate changes; None when it cannot be put so."""
        ...

    async def require_second_factor(self, user: User, *, transport: str, scope: Scope) -> None:
        """Returns when the account has no second factor; raises ``SecondFactorRequired``
        (carrying a login challenge) when it has one."""
        ...


class _HasSecondFactor(Exception):
    """Raised in the session's transaction (rolling it back) when the account has a factor."""


def _refuse_with_factor(
    check: Callable[[Connection, str], bool], user_id: str, connection: Connection
) -> None:
    if check(connection, user_id):
        raise _HasSecondFactor


@dataclass(frozen=True, slots=True)
class LoginResult:
    user: User
    tokens: IssuedTokens


def _failure_reason(user: User | None, password_ok: bool) -> str | None:
    """Why a login fails, for the audit trail only; None when it succeeds."""
    if user is None:
        return "unknown_account"
    if user.password_hash is None:
        return "unverified" if not user.email_verified else "no_password"
    if not password_ok:
        return "wrong_password"
    if user.disabled:
        return "disabled"
    if not user.email_verified:
        return "unverified"
    return None


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


class LoginService:
    def __init__(
        self,
        database: Database,
        *,
        passwords: PasswordService,
        sessions: SessionService,
        guard: CredentialGuard,
        audit: AuditRecorder,
        clock: Clock,
        second_factor: SecondFactorGate | None = None,
    ) -> None:
        self.database = database
        self.passwords = passwords
        self.sessions = sessions
        self.guard = guard
        self.second_factor = second_factor
        self._audit = audit
        self._clock = clock
        #: The gate's factor conditions and the session statement built with them.
        self._guarded: tuple[object, PreparedStatement | None] = (None, None)

    def _guarded_session(self, gate: SecondFactorGate) -> PreparedStatement | None:
        """The statement that starts a session only for an account without a second factor
        (built once per tuple of the gate's conditions); None when the gate has none."""
        conditions = gate.factor_conditions()
        known, statement = self._guarded
        if conditions is not known:
            statement = None if conditions is None else login_new_session_unless(conditions)
            self._guarded = (conditions, statement)
        return statement

    async def login(
        self, email: str, password: str, *, transport: str, scope: Scope
    ) -> LoginResult:
        """Check the password and start a session.

        Raises ``TooManyAttempts`` (backoff), ``InvalidCredentials``, ``PasswordTooLong``,
        ``HashingOverloaded``, or ``SecondFactorRequired`` (the password was right and the
        account has a second factor: no session yet, a login challenge instead).
        """
        normalized = normalize_email(email)
        await self.guard.check(normalized, scope)
        # On an inline SQLite file, one synchronous read (no greenlet); else the ordinary one.
        found = self.database.try_read(
            partial(read_user_by_email_unit, email_normalized=normalized)
        )
        user = (
            found[0]
            if found is not None
            else await self.database.read(partial(read_user_by_email, email_normalized=normalized))
        )
        # Hash even for unknown users: the response time must not reveal which accounts exist
        # (user enumeration). verify(None, ...) runs a dummy verification of the same cost.
        encoded = user.password_hash if user is not None else None
        result = await self.passwords.verify(encoded, password, login=True)
        reason = _failure_reason(user, result.ok)
        if user is None or reason is not None:
            await self.guard.failed(
                normalized, scope, user_id=user.id if user else None, reason=reason or "unknown"
            )
            raise InvalidCredentials
        await self.guard.succeeded(normalized)
        if result.needs_rehash and encoded is not None:
            await self._rehash(user, encoded, password, scope)
        tokens = await self._start_session(user, transport, scope)
        self._record(
            scope,
            EventType.IDENTITY_LOGIN_SUCCEEDED,
            user.id,
            details={"session_id": tokens.session_id, "transport": transport},
        )
        return LoginResult(user, tokens)

    async def _start_session(self, user: User, transport: str, scope: Scope) -> IssuedTokens:
        """The session of a correct password, unless the account has a second factor (then
        ``SecondFactorRequired``, from the gate).

        The gate is asked in the transaction that starts the session (one unit of work): an
        account with a factor rolls it back, nothing written, and gets its challenge from the
        gate, which asks again in the transaction that issues it."""
        gate = self.second_factor
        check = gate.factor_check() if gate is not None else None
        if gate is None or check is None:
            if gate is not None:
                await gate.require_second_factor(user, transport=transport, scope=scope)
            return await self._new_session(user, transport, scope)
        refuse = partial(_refuse_with_factor, check, user.id)
        statement = self._guarded_session(gate)
        try:
            if statement is None:
                return await self._new_session(user, transport, scope, precondition=refuse)
            # One statement: the session, unless the account has a factor; only when nothing
            # was inserted is the check asked (factor, else disabled or erased meanwhile).
            return await self._new_session(
                user, transport, scope, new_session=statement, refused=refuse
            )
        except _HasSecondFactor:
            pass
        await gate.require_second_factor(user, transport=transport, scope=scope)
        # The factor went in between (removed meanwhile): the gate found none, as it would
        # have had it been asked first.
        return await self._new_session(user, transport, scope)

    async def _new_session(
        self,
        user: User,
        transport: str,
        scope: Scope,
        *,
        precondition: Callable[[Connection], None] | None = None,
        new_session: PreparedStatement | None = None,
        refused: Callable[[Connection], None] | None = None,
    ) -> IssuedTokens:
        return await self.sessions.create(
            user.id,
            amr=[AuthMethod.PASSWORD],
            acr=AssuranceLevel.AAL1,
            transport=transport,
            ip=client_ip_of(scope),
            user_agent=_header(scope, b"user-agent"),
            precondition=precondition,
            new_session=new_session,
            refused=refused,
        )

    async def _rehash(self, user: User, encoded: str, password: str, scope: Scope) -> None:
        new_hash = await self.passwords.hash(password)
        async with self.database.engine.begin() as connection:
            # Compare-and-set: a password changed meanwhile is not overwritten.
            await connection.execute(
                update(users)
                .where(users.c.id == user.id, users.c.password_hash == encoded)
                .values(password_hash=new_hash)
            )
        self._record(scope, EventType.IDENTITY_PASSWORD_REHASHED, user.id)

    def _record(
        self,
        scope: Scope,
        type_: EventType,
        user_id: str,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        subject = f"user:{user_id}"
        record_from_scope(
            self._audit,
            scope,
            type_,
            Outcome.SUCCESS,
            actor=subject,
            subject=subject,
            details=details,
            clock=self._clock,
        )
