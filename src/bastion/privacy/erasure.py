"""The right to erasure (GDPR Art. 17; CCPA deletion), in one transaction.

What goes, all or nothing:

* every session is revoked (its access tokens are refused everywhere within the revocation
  bound: deleting the row instead would hide the revocation from other workers' caches, see
  :mod:`bastion.identity.sessions.revocation`) and stripped of its IP address and user agent;
  its refresh tokens are deleted; the cleanup job deletes the revoked rows after the window;
* the second factors (authenticator app, recovery codes, passkeys), login and passkey
  challenges, account tokens (verification, reset, email change), the password history, and
  the outbox mails to the account's addresses;
* every relationship tuple naming ``user:<id>`` (as the user, as the object, or a userset of
  it) in every authorization store, each deletion written to the store's changelog so caches
  and ``ReadChanges`` readers see it, under each store's write lock (taken in id order);
* the ``users`` row is kept, pseudonymized: email and name replaced, password removed,
  disabled, no longer administrator. Kept so that foreign keys and the audit trail (which names
  ``user:<id>``) stay valid; the email is freed, so the address can register again.

What stays: audit events (the hash chain must stay verifiable; retained under the legal
obligation and legitimate-interest bases, and deleted by audit retention) and elevation records
(who held a privileged role, when: the same basis). See ``docs/privacy.md``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bastion.authz.builtin.model import SYSTEM_OBJECT, SYSTEM_STORE_ID, Role
from bastion.authz.store.models import OP_DELETE, authz_changes, authz_stores, authz_tuples
from bastion.identity.accounts.models import account_tokens, password_history, users
from bastion.identity.mail.models import mail_outbox
from bastion.identity.mfa.models import mfa_challenges, mfa_recovery_codes, mfa_totp
from bastion.identity.mfa.webauthn.models import webauthn_challenges, webauthn_credentials
from bastion.identity.sessions.models import refresh_tokens, sessions
from bastion.privacy.errors import LastAdministrator
from bastion.privacy.export import entity_match

__all__ = ["ERASED_DISPLAY_NAME", "ERASED_EMAIL_PREFIX", "erase_rows", "erased_email"]

#: The pseudonymous email of an erased account: not an address (no ``@``), so no registration
#: can ever take it, and unique per account (``users.email_normalized`` is unique).
ERASED_EMAIL_PREFIX = "erased:"
ERASED_DISPLAY_NAME = "Erased account"
#: ``sessions.revoke_reason`` of the sessions an erasure ended.
REVOKE_REASON = "account_erased"

#: Tables whose rows about the account are deleted outright (by ``user_id``).
_BY_USER = (
    mfa_totp,
    mfa_recovery_codes,
    mfa_challenges,
    webauthn_credentials,
    webauthn_challenges,
    account_tokens,
    password_history,
)


def erased_email(user_id: str) -> str:
    return f"{ERASED_EMAIL_PREFIX}{user_id}"


async def _end_sessions(connection: AsyncConnection, user_id: str, now: datetime) -> list[str]:
    s = sessions.c
    revoked = await connection.execute(
        update(sessions)
        .where(s.user_id == user_id, s.revoked_at.is_(None))
        .values(revoked_at=now, revoke_reason=REVOKE_REASON)
        .returning(s.id)
    )
    ids = [row.id for row in revoked]
    await connection.execute(
        update(sessions).where(s.user_id == user_id).values(ip=None, user_agent=None)
    )
    owned = select(s.id).where(s.user_id == user_id)
    await connection.execute(delete(refresh_tokens).where(refresh_tokens.c.session_id.in_(owned)))
    return ids


async def _mails(connection: AsyncConnection, user_id: str, email: str) -> None:
    pending = select(account_tokens.c.new_email).where(
        account_tokens.c.user_id == user_id, account_tokens.c.new_email.is_not(None)
    )
    addresses = {email} | {row.new_email for row in await connection.execute(pending)}
    await connection.execute(delete(mail_outbox).where(mail_outbox.c.recipient.in_(addresses)))


async def _tuples(connection: AsyncConnection, entity: str, now: datetime) -> int:
    t = authz_tuples.c
    match = or_(entity_match(t.user, entity), entity_match(t.object, entity))
    stores = await connection.execute(select(t.store_id).where(match).distinct())
    removed = 0
    # Store write locks in id order: two erasures never wait on each other in a cycle.
    for store_id in sorted(row.store_id for row in stores):
        await connection.execute(
            update(authz_stores).where(authz_stores.c.id == store_id).values(id=authz_stores.c.id)
        )
        where = and_(t.store_id == store_id, match)
        rows = (await connection.execute(select(authz_tuples).where(where))).mappings().all()
        if not rows:
            continue
        await connection.execute(delete(authz_tuples).where(where))
        await connection.execute(
            insert(authz_changes),
            [
                {
                    "store_id": store_id,
                    "operation": OP_DELETE,
                    "object_type": r["object_type"],
                    "object": r["object"],
                    "relation": r["relation"],
                    "user": r["user"],
                    "condition_name": r["condition_name"],
                    "condition_context": r["condition_context"],
                    "created_at": now,
                }
                for r in rows
            ],
        )
        removed += len(rows)
    return removed


async def _pseudonymize(connection: AsyncConnection, user_id: str, now: datetime) -> None:
    await connection.execute(
        update(users)
        .where(users.c.id == user_id)
        .values(
            email=erased_email(user_id),
            email_normalized=erased_email(user_id),
            display_name=ERASED_DISPLAY_NAME,
            password_hash=None,
            password_changed_at=None,
            is_admin=False,
            email_verified=False,
            disabled=True,
            updated_at=now,
        )
    )


async def _keep_an_administrator(connection: AsyncConnection, entity: str) -> None:
    """Raise LastAdministrator when ``entity`` is the only permanent ``admin``."""
    t = authz_tuples.c
    permanent_admins = select(t.user).where(
        t.store_id == SYSTEM_STORE_ID,
        t.object == SYSTEM_OBJECT,
        t.relation == Role.ADMIN.value,
        # A time-limited elevation is no successor: it ends by itself.
        t.condition_name.is_(None),
    )
    holders = {row.user for row in await connection.execute(permanent_admins)}
    if holders == {entity}:
        raise LastAdministrator


async def erase_rows(
    connection: AsyncConnection, user_id: str, email: str, now: datetime
) -> tuple[list[str], int]:
    """Erase the account in the caller's transaction; return the revoked session ids and the
    number of tuples removed. The caller has checked that the account exists. Raises
    LastAdministrator (nothing changed) for the only permanent administrator."""
    await _keep_an_administrator(connection, f"user:{user_id}")
    # The user's row changes first: a login that has not written its session yet then cannot
    # (sessions are inserted from the user's row under a share lock, only while it is enabled),
    # and one that has is committed before this transaction goes on, so its session ends below.
    await connection.execute(
        update(users).where(users.c.id == user_id).values(disabled=True, updated_at=now)
    )
    revoked = await _end_sessions(connection, user_id, now)
    await _mails(connection, user_id, email)
    for table in _BY_USER:
        await connection.execute(delete(table).where(table.c.user_id == user_id))
    tuples = await _tuples(connection, f"user:{user_id}", now)
    await _pseudonymize(connection, user_id, now)
    return revoked, tuples
