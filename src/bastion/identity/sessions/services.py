"""Sessions: one per login, renewed by rotating refresh tokens, ended by logout or lifetime.

Refresh tokens (:func:`bastion.crypto.new_token`, 256 random bits) are stored as SHA-256
digests and are single use. :meth:`SessionService.refresh` consumes one atomically (the UPDATE
that marks it used is the check that it was unused) and returns its successor. Presenting an
already-used token again means a copy exists somewhere else (stolen, or replayed): the whole
session is revoked and ``token:refresh:reuse_detected`` recorded, so neither the thief nor the
user keeps a usable token (OAuth 2.0 Security BCP, RFC 9700 §4.14.2).

One exception, the *retry grace*: a client whose refresh answer was lost (a network error, two
tabs refreshing at once) presents the same token again within ``refresh_grace_seconds``
(default 10). It then gets the *same successor* the first request got, not a new one, so the
chain stays single: the successor is kept sealed in its own row (AES-GCM under a key derived
from the secret key, bound to the parent's digest), the parent's row names it, and the sealed
copy is erased once the successor is used in turn. After the grace, or once the successor
itself has been used, a replay is reuse.

A session ends when revoked (logout, password change or reset, admin), when it has not been
refreshed for ``session_idle_seconds``, or ``session_absolute_seconds`` after the login. A
rotation records the session's activity (``last_seen_at``) only when the recorded time is more
than a step old (:data:`SEEN_STEP`, at most a hundredth of the idle lifetime): the idle lifetime
then counts from up to a step before the last refresh, so a session may end up to a step
early, never late; listings show ``last_seen_at`` to within a step.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any, NamedTuple

from sqlalchemy import Connection, Row, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bastion.audit.context import record_from_scope
from bastion.audit.events import EventType, Outcome
from bastion.audit.interfaces import AuditRecorder
from bastion.clock import Clock
from bastion.crypto import EnvelopeCipher, TokenKind, bind, hash_token, is_well_formed, new_token
from bastion.crypto.errors import DecryptionFailed
from bastion.identity.accounts.models import users
from bastion.identity.errors import InvalidCredentials
from bastion.identity.fields import is_plain_id
from bastion.identity.sessions._statements import (
    LOGIN_EVICT,
    LOGIN_FIRST_TOKEN,
    LOGIN_NEW_SESSION,
    ROTATE_ADD_TOKEN,
    ROTATE_CONSUME,
    ROTATE_RENEWABLE,
    ROTATE_TOUCH,
)
from bastion.identity.sessions.models import (
    MAX_IP_CHARS,
    MAX_USER_AGENT_CHARS,
    refresh_tokens,
    sessions,
)
from bastion.identity.sessions.revocation import RevocationCache
from bastion.identity.tokens.claims import AssuranceLevel, AuthMethod
from bastion.identity.tokens.errors import InvalidToken, InvalidTokenReason
from bastion.identity.tokens.rotation import SigningKeyManager
from bastion.identity.tokens.services import AccessTokenService
from bastion.storage import Database
from bastion.storage.prepared import PreparedStatement
from bastion.storage.sqlite_inline import InlineUnit

__all__ = ["IssuedTokens", "RevokeReason", "SessionInfo", "SessionService"]

#: Live sessions one user may hold; a new login beyond it ends the oldest. Bounds the rows a
#: stolen password (or a script) can create, and what "my sessions" lists.
MAX_SESSIONS_PER_USER = 100
#: At most this many sessions are listed (the newest first).
MAX_LISTED_SESSIONS = MAX_SESSIONS_PER_USER
#: A rotation records its session's activity (``last_seen_at``) only when the recorded time is
#: older than this (or than :data:`SEEN_STEPS_PER_IDLE`'s share of the idle lifetime, if
#: shorter): writing the session's row on every rotation was a sixth of the pages a rotation
#: writes. The idle lifetime is thereby enforced up to a step early, never late.
SEEN_STEP = timedelta(seconds=60)
SEEN_STEPS_PER_IDLE = 100
Reason = InvalidTokenReason


class RevokeReason:
    """Why a session ended (``sessions.revoke_reason`` and audit reasons)."""

    LOGOUT = "logout"
    SESSION_LIMIT = "session_limit"
    LOGOUT_ALL = "logout_all"
    REFRESH_REUSE = "refresh_token_reuse"
    PASSWORD_CHANGED = "password_changed"  # noqa: S105 - a reason, not a secret
    PASSWORD_RESET = "password_reset"  # noqa: S105 - a reason, not a secret
    ADMIN = "admin"
    DISABLED = "account_disabled"


@dataclass(frozen=True, slots=True)
class IssuedTokens:
    """What a login or a refresh hands out. ``refresh_token`` exists nowhere else."""

    user_id: str
    session_id: str
    access_token: str
    expires_in: int
    refresh_token: str


@dataclass(frozen=True, slots=True)
class SessionInfo:
    id: str
    user_id: str
    created_at: datetime
    last_seen_at: datetime
    ip: str | None
    user_agent: str | None
    amr: tuple[str, ...]
    acr: str
    transport: str


#: Members by value: what ``AuthMethod(value)`` / ``AssuranceLevel(value)`` return for a stored
#: value, without the enum's call (anything else goes through it, its ``ValueError`` included).
_METHODS: dict[str, AuthMethod] = {m.value: m for m in AuthMethod}
_LEVELS: dict[str, AssuranceLevel] = {a.value: a for a in AssuranceLevel}


#: ``bind`` is each part length-prefixed, in order: the constant parts are encoded once.
_SUCCESSOR_PLACE = bind("refresh_tokens", "successor")


def _successor_binding(parent_hash: str) -> bytes:
    """``bind("refresh_tokens", "successor", parent_hash)``."""
    return _SUCCESSOR_PLACE + bind(parent_hash)


class _Renewed(NamedTuple):
    """A rotation's outcome inside its transaction: whose session, and the successor. (A
    named tuple: made on every refresh, cheaper than a frozen dataclass.)"""

    user_id: str
    session_id: str
    amr: Sequence[str]
    acr: str
    successor: str


class SessionService:
    """Creates, renews, lists and ends sessions."""

    def __init__(
        self,
        database: Database,
        tokens: AccessTokenService,
        cipher: EnvelopeCipher,
        revocations: RevocationCache,
        *,
        signing: SigningKeyManager,
        audit: AuditRecorder,
        clock: Clock,
        idle: timedelta,
        absolute: timedelta,
        refresh_grace: timedelta,
    ) -> None:
        self.database = database
        self.tokens = tokens
        self.signing = signing
        self.revocations = revocations
        self._cipher = cipher
        self._audit = audit
        self._clock = clock
        self.idle = idle
        #: How stale a session's ``last_seen_at`` may be before a rotation records its activity
        #: (see :data:`SEEN_STEP`).
        self.seen_step = min(SEEN_STEP, idle / SEEN_STEPS_PER_IDLE)
        self.absolute = absolute
        self.refresh_grace = refresh_grace

    # -- creating and renewing -------------------------------------------------------------
    async def create(
        self,
        user_id: str,
        *,
        amr: Sequence[AuthMethod],
        acr: AssuranceLevel,
        transport: str,
        ip: str | None,
        user_agent: str | None,
        precondition: Callable[[Connection], None] | None = None,
        new_session: PreparedStatement | None = None,
        refused: Callable[[Connection], None] | None = None,
    ) -> IssuedTokens:
        """Start a session for ``user_id`` and issue its first tokens.

        ``precondition`` runs first in the session's transaction (synchronous: the transaction
        is one unit of work, see :meth:`Database.transaction`); what it raises rolls the
        transaction back, nothing written, and propagates. ``new_session`` replaces the
        statement that inserts the session (:func:`login_new_session_unless`, with the same
        parameters; default :data:`LOGIN_NEW_SESSION`); when it inserts nothing, ``refused``
        runs (in the transaction; what it raises propagates) before ``InvalidCredentials``."""
        now = self._clock.now()
        session_id = str(uuid.uuid4())
        refresh_token = new_token(TokenKind.REFRESH)
        session = {
            "sid": session_id,
            "uid": user_id,
            "now": now,
            "until": now + self.absolute,
            "client_ip": ip[:MAX_IP_CHARS] if ip else None,
            "agent": user_agent[:MAX_USER_AGENT_CHARS] if user_agent else None,
            # Members as they are (every login's): the enum's call only for anything else.
            "methods": [(m if type(m) is AuthMethod else AuthMethod(m)).value for m in amr],
            "level": (acr if type(acr) is AssuranceLevel else AssuranceLevel(acr)).value,
            "via": transport,
        }
        first_token = {"new_hash": hash_token(refresh_token), "sid": session_id, "now": now}
        # Beyond the limit, the oldest live sessions end (one statement, no SELECT first).
        evict = {
            "uid": user_id,
            "now": now,
            "keep": MAX_SESSIONS_PER_USER,
            "reason": RevokeReason.SESSION_LIMIT,
        }
        statement = new_session or LOGIN_NEW_SESSION
        # The usual case, on an inline SQLite file: the three statements and the commit in one
        # synchronous call (Database.try_unit). Anything else (a precondition, which asks on a
        # Connection; no session inserted: refused, disabled or erased; a writer to wait for,
        # an error; PostgreSQL) takes the transaction below, which starts over.
        evicted: list[str] | None = None
        if precondition is None:
            evicted = self.database.try_unit(
                partial(
                    _start_session_unit,
                    session=session,
                    first_token=first_token,
                    evict=evict,
                    new_session=statement,
                )
            )
        if evicted is None:
            # One transaction, run as one unit of work (one greenlet, see
            # Database.transaction).
            evicted = await self.database.transaction(
                partial(
                    _start_session,
                    session=session,
                    first_token=first_token,
                    evict=evict,
                    precondition=precondition,
                    new_session=statement,
                    refused=refused,
                )
            )
        self.revocations.add(evicted)
        return await self._tokens(user_id, session_id, amr, acr, refresh_token)

    async def _tokens(
        self,
        user_id: str,
        session_id: str,
        amr: Sequence[str],
        acr: str,
        refresh_token: str,
    ) -> IssuedTokens:
        key = await self.signing.ensure()  # the active key (a new one if none signs now)
        access = await self.tokens.issue(
            subject=user_id,
            session_id=session_id,
            amr=[(_METHODS.get(m) if type(m) is str else None) or AuthMethod(m) for m in amr],
            acr=(_LEVELS.get(acr) if type(acr) is str else None) or AssuranceLevel(acr),
            key=key,
        )
        return IssuedTokens(
            user_id, session_id, access, self.tokens.settings.ttl_seconds, refresh_token
        )

    async def session_of_refresh_token(self, refresh_token: str) -> str | None:
        """The session a refresh token belongs to (used or not), without consuming it."""
        if not is_well_formed(refresh_token, TokenKind.REFRESH):
            return None
        c = refresh_tokens.c
        query = select(c.session_id).where(c.token_hash == hash_token(refresh_token))
        async with self.database.engine.connect() as connection:
            row = (await connection.execute(query)).first()
        return row.session_id if row is not None else None

    async def refresh(
        self, refresh_token: str, *, scope: Mapping[str, Any] | None = None
    ) -> IssuedTokens:
        """Rotate ``refresh_token``: returns new tokens for its session.

        Raises :class:`InvalidToken` (one opaque error; ``reason`` for the audit trail) when the
        token is malformed or unknown, its session has ended, or it was already used (outside
        the retry grace: then the session is revoked too).
        """
        try:
            return await self._refresh(refresh_token, scope or {})
        except InvalidToken as exc:
            self._record(
                scope or {},
                EventType.TOKEN_REFRESH_REJECTED,
                Outcome.FAILURE,
                reason=exc.reason.value,
            )
            raise

    async def _refresh(self, token: str, scope: Mapping[str, Any]) -> IssuedTokens:
        if not is_well_formed(token, TokenKind.REFRESH):
            raise InvalidToken(Reason.MALFORMED)
        now = self._clock.now()
        token_hash = hash_token(token)
        successor = new_token(TokenKind.REFRESH)
        sealed = self._cipher.encrypt(
            successor.encode(), associated_data=_successor_binding(token_hash)
        )
        # The usual case, on an inline SQLite file: the rotation's three statements and the
        # commit in one synchronous call (Database.try_unit). Anything else (a used or unknown
        # token, a session that may not be renewed, a writer to wait for, an error; PostgreSQL)
        # takes the transaction below, which starts over.
        unit = partial(
            self._rotate_unit, token_hash=token_hash, now=now, successor=successor, sealed=sealed
        )
        outcome: _Renewed | tuple[str, list[str]] | None = self.database.try_unit(unit)
        checkpointer = self.database.checkpointer
        if outcome is None and checkpointer is not None and await checkpointer.released():
            # A WAL checkpoint's last pass held the write gate (a few milliseconds, about every
            # 800 rotations under load): every rotation arriving meanwhile waited here, and each
            # now runs as the usual case, one after another, not through the transaction below.
            outcome = self.database.try_unit(unit)
        if outcome is None:
            # One transaction, run as one unit of work (one greenlet, see
            # Database.transaction).
            outcome = await self.database.transaction(
                partial(
                    self._rotate_or_revoke,
                    token_hash=token_hash,
                    now=now,
                    successor=successor,
                    sealed=sealed,
                )
            )
        if isinstance(outcome, _Renewed):
            # Signed after the commit: no signing-key work inside the write transaction.
            return await self._tokens(
                outcome.user_id, outcome.session_id, outcome.amr, outcome.acr, outcome.successor
            )
        # The revocation is committed before anyone is told.
        session_id, revoked = outcome
        self.revocations.add(revoked)
        self._record(
            scope,
            EventType.TOKEN_REFRESH_REUSE_DETECTED,
            Outcome.FAILURE,
            reason=RevokeReason.REFRESH_REUSE,
            session_id=session_id,
            user_id=await self._owner(session_id),
        )
        raise InvalidToken(Reason.REUSED)

    def _rotate_or_revoke(
        self, connection: Connection, *, token_hash: str, now: datetime, successor: str, sealed: str
    ) -> _Renewed | tuple[str, list[str]]:
        """Inside the refresh's transaction: the renewal, or (reuse) the session id and the
        ids of the sessions revoked."""
        renewed = self._rotate(connection, token_hash, now, successor, sealed)
        if renewed is None:
            renewed = self._grace_retry(connection, token_hash, now)
        if renewed is not None:
            return renewed
        session_id = self._session_of(connection, token_hash)
        revoked = self._revoke_where(
            connection, [sessions.c.id == session_id], RevokeReason.REFRESH_REUSE, now
        )
        return session_id, revoked

    def _rotate(
        self, connection: Connection, token_hash: str, now: datetime, successor: str, sealed: str
    ) -> _Renewed | None:
        """Consume an unused token, renew its session and store the successor, in three
        statements; None if the token was already used (or is unknown)."""
        renewed = self._rotation(
            partial(_on_connection, connection), token_hash, now, successor, sealed
        )
        if isinstance(renewed, str):
            # The session may not be renewed: raises the precise reason (revoked or expired);
            # the transaction rolls back and the token stays unused.
            self._live_session(connection, renewed, now)
            raise InvalidToken(Reason.SESSION_REVOKED)  # changed under us: fail closed
        return renewed

    def _rotate_unit(
        self, unit: InlineUnit, *, token_hash: str, now: datetime, successor: str, sealed: str
    ) -> _Renewed | None:
        """:meth:`_rotate` as a unit of :meth:`Database.try_unit`: the renewal, or None
        (rolled back) for anything else, which the ordinary transaction then handles."""
        renewed = self._rotation(partial(_in_unit, unit), token_hash, now, successor, sealed)
        return renewed if type(renewed) is _Renewed else None

    def _rotation(
        self,
        execute: Callable[[PreparedStatement, Mapping[str, Any]], list[Any]],
        token_hash: str,
        now: datetime,
        successor: str,
        sealed: str,
    ) -> _Renewed | str | None:
        """The rotation's three statements, run by ``execute``: the renewal; the session id
        when the token was consumed but its session may not be renewed (the caller must roll
        back); None if the token was already used (or is unknown)."""
        new_hash = hash_token(successor)
        rows = execute(ROTATE_CONSUME, {"hash": token_hash, "now": now, "new_hash": new_hash})
        if not rows:
            return None
        session_id: str = rows[0].session_id
        renew = {"sid": session_id, "now": now, "idle_since": now - self.idle}
        renewed = execute(ROTATE_RENEWABLE, renew)
        if not renewed:
            return session_id
        stale = now - self.seen_step
        if renewed[0].last_seen_at < stale:
            # Recorded once a step, not on every rotation (a page write each: a sixth of a
            # rotation's WAL frames). The session may end up to a step early, never late.
            execute(ROTATE_TOUCH, {"sid": session_id, "now": now, "stale": stale})
        add = {
            "new_hash": new_hash,
            "sid": session_id,
            "hash": token_hash,
            "now": now,
            "sealed": sealed,
        }
        execute(ROTATE_ADD_TOKEN, add)
        session = renewed[0]
        return _Renewed(session.user_id, session_id, session.amr or (), session.acr, successor)

    def _session_of(self, connection: Connection, token_hash: str) -> str:
        c = refresh_tokens.c
        query = select(c.session_id).where(c.token_hash == token_hash)
        row = connection.execute(query).first()
        if row is None:
            raise InvalidToken(Reason.UNKNOWN_TOKEN)
        return str(row.session_id)

    def _grace_retry(
        self, connection: Connection, token_hash: str, now: datetime
    ) -> _Renewed | None:
        """The same successor for a concurrent retry within the grace; None for reuse."""
        c = refresh_tokens.c
        previous = connection.execute(
            select(c.session_id, c.used_at, c.successor_hash).where(c.token_hash == token_hash)
        ).first()
        if previous is None:
            raise InvalidToken(Reason.UNKNOWN_TOKEN)
        if previous.used_at is None or previous.successor_hash is None:
            return None
        if now - previous.used_at > self.refresh_grace:
            return None
        # The successor's row: unused, its sealed copy still there (erased when it is used).
        row = connection.execute(
            select(c.used_at, c.successor_sealed).where(c.token_hash == previous.successor_hash)
        ).first()
        if row is None or row.used_at is not None or row.successor_sealed is None:
            return None
        try:
            successor = self._cipher.decrypt(
                row.successor_sealed, associated_data=_successor_binding(token_hash)
            ).decode()
        except DecryptionFailed:
            return None
        if hash_token(successor) != previous.successor_hash:
            return None
        session = self._live_session(connection, previous.session_id, now)
        return _Renewed(session.user_id, session.id, session.amr, session.acr, successor)

    def _live_session(self, connection: Connection, session_id: str, now: datetime) -> SessionInfo:
        """The session if it may still be renewed; raises InvalidToken otherwise."""
        s = sessions.c
        query = (
            select(sessions, users.c.disabled)
            .join(users, users.c.id == s.user_id)
            .where(s.id == session_id)
        )
        row = connection.execute(query).first()
        if row is None or row.revoked_at is not None or row.disabled:
            raise InvalidToken(Reason.SESSION_REVOKED)
        if now >= row.absolute_expires_at or now - row.last_seen_at > self.idle:
            raise InvalidToken(Reason.SESSION_EXPIRED)
        return _info(row)

    # -- ending ----------------------------------------------------------------------------
    async def revoke(
        self,
        session_id: str,
        *,
        user_id: str,
        reason: str,
        scope: Mapping[str, Any] | None = None,
        actor: str | None = None,
    ) -> bool:
        """End one session of ``user_id``; False if there is no such live session of theirs."""
        if not is_plain_id(session_id):
            return False
        conditions = [sessions.c.id == session_id, sessions.c.user_id == user_id]
        revoked = await self.database.transaction(
            partial(self._revoke_where, conditions=conditions, reason=reason, now=self._clock.now())
        )
        self._after_revoke(revoked, user_id, reason, scope, actor)
        return bool(revoked)

    async def revoke_all(
        self,
        connection: AsyncConnection,
        user_id: str,
        *,
        reason: str,
        keep: str | None = None,
    ) -> list[str]:
        """End every session of ``user_id`` (but ``keep``) in the caller's transaction. After
        the commit, pass the returned ids to :meth:`after_revoke_all`."""
        conditions = [sessions.c.user_id == user_id]
        if keep is not None:
            conditions.append(sessions.c.id != keep)
        return await connection.run_sync(self._revoke_where, conditions, reason, self._clock.now())

    def after_revoke_all(
        self,
        revoked: Sequence[str],
        user_id: str,
        reason: str,
        scope: Mapping[str, Any] | None = None,
        actor: str | None = None,
    ) -> None:
        self._after_revoke(revoked, user_id, reason, scope, actor)

    def _after_revoke(
        self,
        revoked: Sequence[str],
        user_id: str,
        reason: str,
        scope: Mapping[str, Any] | None,
        actor: str | None,
    ) -> None:
        self.revocations.add(revoked)
        if revoked:
            self._record(
                scope or {},
                EventType.IDENTITY_SESSION_REVOKED,
                Outcome.SUCCESS,
                reason=reason,
                user_id=user_id,
                actor=actor or f"user:{user_id}",
                details={"sessions": list(revoked)},
            )

    def _revoke_where(
        self, connection: Connection, conditions: list[Any], reason: str, now: datetime
    ) -> list[str]:
        result = connection.execute(
            update(sessions)
            .where(*conditions, sessions.c.revoked_at.is_(None))
            .values(revoked_at=now, revoke_reason=reason)
            .returning(sessions.c.id)
        )
        return [row.id for row in result]

    # -- reading ---------------------------------------------------------------------------
    async def list_active(self, user_id: str) -> list[SessionInfo]:
        """The user's live sessions, newest first."""
        now = self._clock.now()
        s = sessions.c
        query = (
            select(sessions)
            .where(
                s.user_id == user_id,
                s.revoked_at.is_(None),
                s.absolute_expires_at > now,
                s.last_seen_at >= now - self.idle,
            )
            .order_by(s.created_at.desc(), s.id)
            .limit(MAX_LISTED_SESSIONS)
        )
        async with self.database.engine.connect() as connection:
            return [_info(row) for row in await connection.execute(query)]

    async def is_live(self, session_id: str) -> bool:
        """Whether the session may still be used, read from the database (not the cache)."""
        try:
            await self.database.read(
                partial(self._live_session, session_id=session_id, now=self._clock.now())
            )
        except InvalidToken:
            return False
        return True

    async def _owner(self, session_id: str) -> str | None:
        query = select(sessions.c.user_id).where(sessions.c.id == session_id)
        async with self.database.engine.connect() as connection:
            row = (await connection.execute(query)).first()
        return row.user_id if row is not None else None

    def _record(
        self,
        scope: Mapping[str, Any],
        type_: EventType,
        outcome: Outcome,
        *,
        reason: str | None = None,
        user_id: str | None = None,
        actor: str | None = None,
        session_id: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        extra = dict(details or {})
        if session_id is not None:
            extra["session_id"] = session_id
        record_from_scope(
            self._audit,
            scope,
            type_,
            outcome,
            actor=actor,
            subject=f"user:{user_id}" if user_id else None,
            reason=reason,
            details=extra,
            clock=self._clock,
        )


def _start_session(
    connection: Connection,
    *,
    session: Mapping[str, Any],
    first_token: Mapping[str, Any],
    evict: Mapping[str, Any],
    precondition: Callable[[Connection], None] | None,
    new_session: PreparedStatement,
    refused: Callable[[Connection], None] | None,
) -> list[str]:
    """Inside a login's transaction: the caller's precondition, the session, its first refresh
    token, and the eviction of the user's oldest live sessions beyond the limit (their ids are
    returned)."""
    if precondition is not None:
        precondition(connection)
    if not new_session.execute(connection, session):
        # Refused by the caller's conditions (``refused`` says why and raises), or disabled or
        # erased since the caller checked (a race): the same answer as a login to a disabled
        # account, and nothing written (the transaction rolls back).
        if refused is not None:
            refused(connection)
        raise InvalidCredentials
    LOGIN_FIRST_TOKEN.execute(connection, first_token)
    return [row.id for row in LOGIN_EVICT.execute(connection, evict)]


def _start_session_unit(
    unit: InlineUnit,
    *,
    session: Mapping[str, Any],
    first_token: Mapping[str, Any],
    evict: Mapping[str, Any],
    new_session: PreparedStatement,
) -> list[str] | None:
    """:func:`_start_session` (without a precondition) as a unit of
    :meth:`Database.try_unit`: the evicted ids, or None (rolled back) when no session was
    inserted, which the ordinary transaction then answers (``refused``, ``InvalidCredentials``).
    The INSERT comes first: the unit starts with a write."""
    if not new_session.execute_unit(unit, session):
        return None
    LOGIN_FIRST_TOKEN.execute_unit(unit, first_token)
    return [row.id for row in LOGIN_EVICT.execute_unit(unit, evict)]


def _on_connection(
    connection: Connection, statement: PreparedStatement, values: Mapping[str, Any]
) -> list[Any]:
    return statement.execute(connection, values)


def _in_unit(
    unit: InlineUnit, statement: PreparedStatement, values: Mapping[str, Any]
) -> list[Any]:
    return statement.execute_unit(unit, values)


def _info(row: Row[Any]) -> SessionInfo:
    return SessionInfo(
        id=row.id,
        user_id=row.user_id,
        created_at=row.created_at,
        last_seen_at=row.last_seen_at,
        ip=row.ip,
        user_agent=row.user_agent,
        amr=tuple(row.amr or ()),
        acr=row.acr,
        transport=row.transport,
    )
