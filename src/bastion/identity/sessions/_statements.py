"""The statements of logins and refresh rotations (:mod:`bastion.identity.sessions.services`),
built once with bound parameters: these are the hottest write paths, and building and
cache-keying a statement on every request costs more than SQLite takes to run it.

Parameter names cannot be column names (SQLAlchemy reserves those in INSERT and UPDATE). A
rotation's three statements run as :class:`~bastion.storage.prepared.PreparedStatement` s (on
the driver's cursor, past SQLAlchemy's per-execution machinery): ``ROTATE_*``; so do a login's
three: ``LOGIN_*``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import (
    JSON,
    ColumnElement,
    Integer,
    Text,
    TypeDecorator,
    bindparam,
    exists,
    func,
    insert,
    not_,
    null,
    select,
    update,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeEngine

from bastion.identity.accounts.models import users
from bastion.identity.sessions.models import refresh_tokens, sessions
from bastion.storage.prepared import PreparedStatement

__all__ = [
    "ADD_TOKEN",
    "CONSUME",
    "EVICT_BEYOND_LIMIT",
    "FIRST_TOKEN",
    "LOGIN_EVICT",
    "LOGIN_FIRST_TOKEN",
    "LOGIN_NEW_SESSION",
    "NEW_SESSION",
    "RENEW",
    "RENEWABLE",
    "ROTATE_ADD_TOKEN",
    "ROTATE_CONSUME",
    "ROTATE_RENEWABLE",
    "ROTATE_TOUCH",
    "TOUCH",
    "login_new_session_unless",
]

_t, _s = refresh_tokens.c, sessions.c
_presented = _t.token_hash == bindparam("hash")
#: Consumes an unused token: the UPDATE is the check that it was unused (atomic, no SELECT
#: first). It names the successor's row for the retry grace (the successor is kept sealed in its
#: own row, :data:`ADD_TOKEN`), and erases the token's own sealed copy: once a token is used, a
#: retry of its parent is reuse. One row: the token's own.
CONSUME = (
    update(refresh_tokens)
    .where(_presented, _t.used_at.is_(None))
    .values(
        used_at=bindparam("now", type_=_t.used_at.type),
        successor_hash=bindparam("new_hash", type_=_t.successor_hash.type),
        successor_sealed=null(),
    )
    .returning(_t.session_id)
)
_renewable = (
    _s.id == bindparam("sid"),
    _s.revoked_at.is_(None),
    _s.absolute_expires_at > bindparam("now"),
    _s.last_seen_at >= bindparam("idle_since"),
    exists().where(users.c.id == _s.user_id, users.c.disabled.is_(False)),
)
#: Renews the session if it may still be renewed (not revoked, within its absolute and idle
#: lifetimes, its user not disabled) and returns what the access token needs; no row otherwise.
RENEW = (
    update(sessions)
    .where(*_renewable)
    .values(last_seen_at=bindparam("now"))
    .returning(_s.id, _s.user_id, _s.amr, _s.acr)
)
#: A rotation's check of its session: :data:`RENEW`'s conditions and answer, with the session's
#: ``last_seen_at``, and the row lock the UPDATE would take (PostgreSQL: ``FOR NO KEY UPDATE``,
#: so a concurrent revocation waits for the rotation, or the rotation for it and then finds the
#: session revoked; SQLite: the rotation's transaction already holds the write lock). No row:
#: the session may not be renewed.
RENEWABLE = (
    select(_s.id, _s.user_id, _s.amr, _s.acr, _s.last_seen_at)
    .where(*_renewable)
    .with_for_update(key_share=True)
)
#: Records the session's activity when its ``last_seen_at`` is older than ``stale``: run by a
#: rotation after :data:`RENEWABLE` found it so (``SessionService.seen_step``), not on every
#: rotation. Its row is already locked (PostgreSQL) or the database's write lock held (SQLite).
TOUCH = (
    update(sessions)
    .where(_s.id == bindparam("sid"), _s.last_seen_at < bindparam("stale"))
    .values(last_seen_at=bindparam("now"))
    .returning(_s.id)
)
#: Stores the successor, sealed in its own row (bound to its parent's digest) for the parent's
#: retry grace until it is used in turn (:data:`CONSUME` erases it then).
ADD_TOKEN = insert(refresh_tokens).values(
    token_hash=bindparam("new_hash"),
    session_id=bindparam("sid"),
    parent_hash=bindparam("hash"),
    created_at=bindparam("now"),
    successor_sealed=bindparam("sealed", type_=Text()),
)
ROTATE_CONSUME = PreparedStatement(CONSUME)
ROTATE_RENEWABLE = PreparedStatement(RENEWABLE)
ROTATE_TOUCH = PreparedStatement(TOUCH)
ROTATE_ADD_TOKEN = PreparedStatement(ADD_TOKEN)
#: Lists of strings whose JSON text :class:`_RememberedJSON` remembers, at most.
_REMEMBERED_JSON_TEXTS = 64
_REMEMBERED_JSON_ITEMS = 8


class _RememberedJSON(TypeDecorator[Any]):
    """``sessions.amr``'s type for the login's bound ``methods``: the column's own bind
    processing (the same JSON text, the same SQL and cast), with the text of a short list of
    strings remembered. A login binds one of a few method lists (``["pwd"]``): its JSON text is
    encoded once, not on every login. Anything else is encoded each time."""

    impl = JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        return sessions.c.amr.type.dialect_impl(dialect)

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        process = super().bind_processor(dialect)
        if process is None:
            return None
        known: dict[tuple[str, ...], Any] = {}

        def remembering(value: Any) -> Any:
            if (
                type(value) is not list
                or len(value) > _REMEMBERED_JSON_ITEMS
                or not all(type(item) is str for item in value)
            ):
                return process(value)
            key = tuple(value)
            text = known.get(key)
            if text is None:
                text = process(value)
                if type(text) is str:
                    if len(known) >= _REMEMBERED_JSON_TEXTS:
                        known.clear()
                    known[key] = text
            return text

        return remembering


#: Starts a session only while its user may log in: the row is inserted from the user's row,
#: read under a share lock (PostgreSQL; SQLite runs one writer at a time), so a session cannot
#: outlive a concurrent disable or erasure (both change the user's row first, then end its
#: sessions: whichever commits first, the other sees it). Returns the id; no row otherwise.
_NEW_SESSION_VALUES = {
    "id": bindparam("sid", type_=_s.id.type),
    "user_id": users.c.id,
    "created_at": bindparam("now", type_=_s.created_at.type),
    "last_seen_at": bindparam("now", type_=_s.last_seen_at.type),
    "absolute_expires_at": bindparam("until", type_=_s.absolute_expires_at.type),
    "ip": bindparam("client_ip", type_=_s.ip.type),
    "user_agent": bindparam("agent", type_=_s.user_agent.type),
    "amr": bindparam("methods", type_=_RememberedJSON()),
    "acr": bindparam("level", type_=_s.acr.type),
    "transport": bindparam("via", type_=_s.transport.type),
}
NEW_SESSION = (
    insert(sessions)
    .from_select(
        list(_NEW_SESSION_VALUES),
        select(*_NEW_SESSION_VALUES.values())
        .where(users.c.id == bindparam("uid"), users.c.disabled.is_(False))
        .with_for_update(read=True),
    )
    .returning(_s.id)
)


def login_new_session_unless(conditions: Sequence[ColumnElement[bool]]) -> PreparedStatement:
    """:data:`NEW_SESSION` that also inserts nothing when any of ``conditions`` (on the bound
    parameter ``uid``: the account's second factors) holds: a password login's session and its
    "has no second factor" check in one statement. No row: disabled, erased, or a factor (the
    caller asks which only then)."""
    return PreparedStatement(
        insert(sessions)
        .from_select(
            list(_NEW_SESSION_VALUES),
            select(*_NEW_SESSION_VALUES.values())
            .where(
                users.c.id == bindparam("uid"),
                users.c.disabled.is_(False),
                *(not_(condition) for condition in conditions),
            )
            .with_for_update(read=True),
        )
        .returning(_s.id)
    )


FIRST_TOKEN = insert(refresh_tokens).values(
    token_hash=bindparam("new_hash"), session_id=bindparam("sid"), created_at=bindparam("now")
)
_live = sessions.alias("live")
#: Ends the user's live sessions beyond the ``keep`` newest (:data:`MAX_SESSIONS_PER_USER`).
EVICT_BEYOND_LIMIT = (
    update(sessions)
    .where(
        _s.id.in_(
            select(_live.c.id)
            .where(
                _live.c.user_id == bindparam("uid"),
                _live.c.revoked_at.is_(None),
                _live.c.absolute_expires_at > bindparam("now"),
            )
            .order_by(_live.c.created_at.desc(), _live.c.id.desc())
            .offset(bindparam("keep", type_=Integer))
        ),
        # Still live when revoked (PostgreSQL rechecks it after a concurrent revocation), but
        # as an expression: SQLite then finds the rows by primary key from the list above.
        # Written ``revoked_at IS NULL`` it searched ``ix_sessions_revoked_at``, i.e. every
        # live session of every user, on every login (2-3 ms a login at 10,000 live sessions).
        func.coalesce(_s.revoked_at, null()).is_(None),
    )
    .values(revoked_at=bindparam("now"), revoke_reason=bindparam("reason"))
    .returning(_s.id)
)
LOGIN_NEW_SESSION = PreparedStatement(NEW_SESSION)
LOGIN_FIRST_TOKEN = PreparedStatement(FIRST_TOKEN)
LOGIN_EVICT = PreparedStatement(EVICT_BEYOND_LIMIT)
