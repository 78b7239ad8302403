"""Erasure at the store level (SQLite and PostgreSQL): exactly the account's tuples go, each
with a changelog entry; lookalike entities stay; mails to the account's addresses go."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import insert, select

from bastion.authz.store.models import OP_DELETE, authz_changes, authz_stores, authz_tuples
from bastion.identity.accounts.models import account_tokens
from bastion.identity.accounts.users import User, insert_user
from bastion.identity.mail.models import mail_outbox
from bastion.privacy.erasure import erase_rows
from bastion.storage import Database

NOW = datetime(2026, 1, 1, tzinfo=UTC)
STORE = "01HZZZZZZZZZZZZZZZZZZZZZZZ"


async def _user(database: Database, email: str) -> User:
    async with database.engine.begin() as connection:
        return await insert_user(
            connection,
            email=email,
            email_normalized=email,
            display_name="Somebody",
            password_hash="$argon2id$x",
            now=NOW,
        )


def _tuple(obj: str, relation: str, user: str) -> dict[str, object]:
    return {
        "store_id": STORE,
        "object_type": obj.split(":", maxsplit=1)[0],
        "object": obj,
        "relation": relation,
        "user": user,
        "created_at": NOW,
    }


def _mail(mail_id: str, recipient: str) -> dict[str, object]:
    return {
        "id": mail_id,
        "recipient": recipient,
        "subject": "s",
        "body": "sealed",
        "kind": "notice",
        "created_at": NOW,
        "next_attempt_at": NOW,
        "attempts": 0,
    }


async def test_only_the_accounts_tuples_and_mails_go(database: Database) -> None:
    user = await _user(database, "a@example.com")
    other = await _user(database, "b@example.com")
    me, lookalike = f"user:{user.id}", f"user:{user.id}x"
    async with database.engine.begin() as connection:
        await connection.execute(
            insert(authz_stores).values(id=STORE, name="app", created_at=NOW, updated_at=NOW)
        )
        await connection.execute(
            insert(authz_tuples),
            [
                _tuple("doc:1", "viewer", me),  # as the user
                _tuple("doc:2", "viewer", f"{me}#friend"),  # a userset of it
                _tuple(me, "friend", f"user:{other.id}"),  # as the object
                _tuple("doc:3", "viewer", lookalike),  # another entity sharing a prefix
                _tuple("doc:4", "viewer", f"user:{other.id}"),
            ],
        )
        await connection.execute(
            insert(account_tokens).values(
                token_hash="h" * 64,
                user_id=user.id,
                purpose="email_change",
                created_at=NOW,
                expires_at=NOW,
                new_email="new@example.com",
            )
        )
        await connection.execute(
            insert(mail_outbox),
            [
                _mail("m1", "a@example.com"),
                _mail("m2", "new@example.com"),
                _mail("m3", "b@example.com"),
            ],
        )
    async with database.engine.begin() as connection:
        revoked, removed = await erase_rows(connection, user.id, user.email, NOW)
    assert (revoked, removed) == ([], 3)
    async with database.engine.connect() as connection:
        left = {(r.object, r.user) for r in await connection.execute(select(authz_tuples))}
        changes = (await connection.execute(select(authz_changes))).all()
        mails = {r.id for r in await connection.execute(select(mail_outbox.c.id))}
    assert left == {("doc:3", lookalike), ("doc:4", f"user:{other.id}")}
    assert len(changes) == 3
    assert {c.operation for c in changes} == {OP_DELETE}
    assert mails == {"m3"}
