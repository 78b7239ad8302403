"""Everything Bastion holds about one account, as one JSON-ready document.

GDPR Art. 15 (access) and Art. 20 (portability), CCPA right to know. The document lists what
is *about* the person and leaves out what would let anyone act as them: no password hash, no
token or recovery-code digest, no TOTP secret, no passkey public key or credential id, no mail
body. Each section is read in one read transaction, so the document is consistent.

Sections: ``profile``, ``sessions``, ``mfa`` (authenticator app, recovery codes as counts,
passkeys' metadata), ``account_tokens`` (pending verification, reset and email-change mails:
purpose and times only), ``mails`` (recipient, subject, kind, times), ``password_history``
(a count), ``authorization`` (relationship tuples naming ``user:<id>``), ``elevations``
(requests for time-limited roles) and ``security_events`` (the audit events whose actor or
subject is the account, newest first, at most :data:`MAX_EVENTS`). Bastion records no consents:
there is no ``consents`` section.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from bastion.audit.models import audit_events
from bastion.authz.builtin.models import authz_elevations
from bastion.authz.store.models import authz_tuples
from bastion.identity.accounts.models import account_tokens, password_history
from bastion.identity.accounts.users import User
from bastion.identity.mail.models import mail_outbox
from bastion.identity.mfa.models import mfa_recovery_codes, mfa_totp
from bastion.identity.mfa.webauthn.models import webauthn_credentials
from bastion.identity.sessions.models import sessions

__all__ = ["FORMAT_VERSION", "MAX_EVENTS", "SECTIONS", "collect", "entity_match"]

#: Version of the document's layout (bumped when a field changes meaning).
FORMAT_VERSION = 1
#: Newest security events included; an account older than that gets ``truncated: true`` and
#: the rest through ``GET /v1/account/events`` (bounded work and answer size per request).
MAX_EVENTS = 5000
SECTIONS = (
    "profile",
    "sessions",
    "mfa",
    "account_tokens",
    "mails",
    "password_history",
    "authorization",
    "elevations",
    "security_events",
)


def entity_match(column: Any, entity: str) -> ColumnElement[bool]:
    """``column`` is ``entity`` or one of its usersets (``entity#relation``)."""
    return or_(column == entity, column.startswith(f"{entity}#", autoescape=True))


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _rows(rows: Iterable[Mapping[Any, Any]]) -> list[dict[str, Any]]:
    return [{key: _plain(value) for key, value in row.items()} for row in rows]


async def _select(connection: AsyncConnection, query: Any) -> list[dict[str, Any]]:
    return _rows((await connection.execute(query)).mappings().all())


def _profile(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "display_name": user.display_name,
        "email_verified": user.email_verified,
        "is_admin": user.is_admin,
        "disabled": user.disabled,
        "has_password": user.password_hash is not None,
        "created_at": _plain(user.created_at),
        "updated_at": _plain(user.updated_at),
        "password_changed_at": _plain(user.password_changed_at),
    }


async def _sessions(connection: AsyncConnection, user_id: str) -> list[dict[str, Any]]:
    s = sessions.c
    columns = (s.id, s.created_at, s.last_seen_at, s.absolute_expires_at, s.auth_time)
    more = (s.ip, s.user_agent, s.amr, s.acr, s.transport, s.revoked_at, s.revoke_reason)
    query = select(*columns, *more).where(s.user_id == user_id).order_by(s.created_at.desc())
    return await _select(connection, query)


async def _mfa(connection: AsyncConnection, user_id: str) -> dict[str, Any]:
    t, r, w = mfa_totp.c, mfa_recovery_codes.c, webauthn_credentials.c
    totp = await _select(
        connection, select(t.created_at, t.activated_at).where(t.user_id == user_id)
    )
    codes = (
        await connection.execute(
            select(func.count(), func.count(r.used_at), func.max(r.created_at)).where(
                r.user_id == user_id
            )
        )
    ).one()
    passkeys = await _select(
        connection,
        select(
            w.id, w.name, w.aaguid, w.transports, w.backup_eligible, w.backed_up, w.sign_count,
            w.created_at, w.last_used_at,
        )
        .where(w.user_id == user_id)
        .order_by(w.created_at),
    )  # fmt: skip
    return {
        "totp": totp[0] if totp else None,
        "recovery_codes": {
            "total": codes[0],
            "used": codes[1],
            "generated_at": _plain(codes[2]),
        },
        "passkeys": passkeys,
    }


async def _tokens(connection: AsyncConnection, user_id: str) -> list[dict[str, Any]]:
    a = account_tokens.c
    query = select(a.purpose, a.new_email, a.created_at, a.expires_at, a.consumed_at)
    return await _select(connection, query.where(a.user_id == user_id).order_by(a.id))


async def _mails(connection: AsyncConnection, addresses: set[str]) -> list[dict[str, Any]]:
    m = mail_outbox.c
    query = select(m.recipient, m.subject, m.kind, m.created_at, m.sent_at, m.attempts)
    return await _select(connection, query.where(m.recipient.in_(addresses)).order_by(m.created_at))


async def _authorization(connection: AsyncConnection, entity: str) -> list[dict[str, Any]]:
    t = authz_tuples.c
    query = select(
        t.store_id, t.object, t.relation, t.user, t.condition_name, t.condition_context,
        t.created_at,
    ).where(or_(entity_match(t.user, entity), entity_match(t.object, entity)))  # fmt: skip
    return await _select(connection, query.order_by(t.id))


async def _elevations(connection: AsyncConnection, user_id: str) -> list[dict[str, Any]]:
    e = authz_elevations.c
    query = select(
        e.id, e.role, e.reason, e.duration_seconds, e.status, e.requested_at, e.decided_at,
        e.expires_at, e.revoked_at,
    ).where(e.user_id == user_id)  # fmt: skip
    return await _select(connection, query.order_by(e.requested_at))


async def _events(connection: AsyncConnection, entity: str) -> tuple[list[dict[str, Any]], bool]:
    c = audit_events.c
    query = (
        select(
            c.id, c.time, c.type, c.outcome, c.actor, c.subject, c.client_ip, c.user_agent,
            c.reason,
        )
        .where(or_(c.subject == entity, c.actor == entity))
        .order_by(c.id.desc())
        .limit(MAX_EVENTS + 1)
    )  # fmt: skip
    found = await _select(connection, query)
    return found[:MAX_EVENTS], len(found) > MAX_EVENTS


async def collect(connection: AsyncConnection, user: User, *, now: datetime) -> dict[str, Any]:
    """The export document of ``user`` (see the module docstring for what it holds)."""
    tokens = await _tokens(connection, user.id)
    addresses = {user.email} | {t["new_email"] for t in tokens if t["new_email"]}
    count = select(func.count()).where(password_history.c.user_id == user.id)
    events, truncated = await _events(connection, user.subject)
    return {
        "format": FORMAT_VERSION,
        "generated_at": _plain(now),
        "subject": user.subject,
        "profile": _profile(user),
        "sessions": await _sessions(connection, user.id),
        "mfa": await _mfa(connection, user.id),
        "account_tokens": tokens,
        "mails": await _mails(connection, addresses),
        "password_history": {"count": (await connection.execute(count)).scalar_one()},
        "authorization": await _authorization(connection, user.subject),
        "elevations": await _elevations(connection, user.id),
        "security_events": {"events": events, "truncated": truncated},
    }
