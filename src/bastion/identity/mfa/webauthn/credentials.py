"""The passkeys of each account: stored, listed, renamed, deleted, and their sign counts moved.

Every read and write of one passkey is scoped to its owner (``WHERE user_id = ...``): a
passkey id of another account is "not found", never touched (IDOR).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import Connection, Row, Select, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bastion.identity.fields import is_plain_id
from bastion.identity.mfa.webauthn.models import webauthn_credentials
from bastion.storage import Database

__all__ = ["CredentialStore", "NewCredential", "Passkey"]


@dataclass(frozen=True, slots=True)
class Passkey:
    """A stored credential. ``credential_id`` and ``public_key`` are public values."""

    id: str
    user_id: str
    credential_id: bytes
    public_key: bytes
    sign_count: int
    name: str
    aaguid: str
    transports: tuple[str, ...]
    backup_eligible: bool
    backed_up: bool
    created_at: datetime
    last_used_at: datetime | None

    @classmethod
    def of(cls, row: Row[Any]) -> Passkey:
        values = {name: getattr(row, name) for name in cls.__slots__}
        values["credential_id"] = bytes(values["credential_id"])
        values["public_key"] = bytes(values["public_key"])
        values["transports"] = tuple(values["transports"] or ())
        return cls(**values)


@dataclass(frozen=True, slots=True)
class NewCredential:
    credential_id: bytes
    public_key: bytes
    sign_count: int
    aaguid: str
    transports: tuple[str, ...]
    backup_eligible: bool
    backed_up: bool


def _by_credential_id(credential_id: bytes) -> Select[Any]:
    return select(webauthn_credentials).where(webauthn_credentials.c.credential_id == credential_id)


def _passkeys(query: Select[Any], connection: Connection) -> list[Passkey]:
    return [Passkey.of(row) for row in connection.execute(query)]


def _passkey(query: Select[Any], connection: Connection) -> Passkey | None:
    row = connection.execute(query).first()
    return Passkey.of(row) if row is not None else None


class CredentialStore:
    def __init__(self, database: Database) -> None:
        self.database = database

    async def count(self, connection: AsyncConnection, user_id: str) -> int:
        c = webauthn_credentials.c
        query = select(func.count()).select_from(webauthn_credentials).where(c.user_id == user_id)
        return int((await connection.execute(query)).scalar_one())

    async def exists(self, connection: AsyncConnection, credential_id: bytes) -> bool:
        c = webauthn_credentials.c
        query = select(c.id).where(c.credential_id == credential_id)
        return (await connection.execute(query)).first() is not None

    async def add(
        self,
        connection: AsyncConnection,
        user_id: str,
        credential: NewCredential,
        *,
        name: str,
        now: datetime,
    ) -> Passkey:
        values: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "user_id": user_id,
            "credential_id": credential.credential_id,
            "public_key": credential.public_key,
            "sign_count": credential.sign_count,
            "name": name,
            "aaguid": credential.aaguid,
            "transports": list(credential.transports),
            "backup_eligible": credential.backup_eligible,
            "backed_up": credential.backed_up,
            "created_at": now,
            "last_used_at": None,
        }
        await connection.execute(insert(webauthn_credentials).values(**values))
        values["transports"] = credential.transports
        return Passkey(**values)

    async def list(
        self, user_id: str, *, connection: AsyncConnection | None = None
    ) -> list[Passkey]:
        c = webauthn_credentials.c
        query = (
            select(webauthn_credentials).where(c.user_id == user_id).order_by(c.created_at, c.id)
        )
        if connection is not None:
            return [Passkey.of(row) for row in await connection.execute(query)]
        # A pure read (no transaction on PostgreSQL): what a registration then writes is
        # decided again in its own transaction (:meth:`count`, the unique credential id).
        return await self.database.read(partial(_passkeys, query))

    async def delete_all(self, connection: AsyncConnection, user_id: str) -> int:
        """Delete every passkey of the user in the caller's transaction; how many there were."""
        c = webauthn_credentials.c
        result = await connection.execute(
            delete(webauthn_credentials).where(c.user_id == user_id).returning(c.id)
        )
        return len(result.all())

    async def by_credential_id(
        self, connection: AsyncConnection, credential_id: bytes
    ) -> Passkey | None:
        row = (await connection.execute(_by_credential_id(credential_id))).first()
        return Passkey.of(row) if row is not None else None

    async def read_by_credential_id(self, credential_id: bytes) -> Passkey | None:
        """:meth:`by_credential_id` as a pure read of its own (no transaction on PostgreSQL):
        for what is shown or recorded only, never for a verification (that reads the passkey
        in the transaction that moves its sign count)."""
        return await self.database.read(partial(_passkey, _by_credential_id(credential_id)))

    async def rename(self, user_id: str, passkey_id: str, name: str) -> Passkey | None:
        if not is_plain_id(passkey_id):
            return None
        c = webauthn_credentials.c
        async with self.database.engine.begin() as connection:
            row = (
                await connection.execute(
                    update(webauthn_credentials)
                    .where(c.id == passkey_id, c.user_id == user_id)
                    .values(name=name)
                    .returning(webauthn_credentials)
                )
            ).first()
        return Passkey.of(row) if row is not None else None

    async def delete(self, user_id: str, passkey_id: str) -> Passkey | None:
        if not is_plain_id(passkey_id):
            return None
        c = webauthn_credentials.c
        async with self.database.engine.begin() as connection:
            row = (
                await connection.execute(
                    delete(webauthn_credentials)
                    .where(c.id == passkey_id, c.user_id == user_id)
                    .returning(webauthn_credentials)
                )
            ).first()
        return Passkey.of(row) if row is not None else None

    async def record_use(
        self, connection: AsyncConnection, passkey: Passkey, new_sign_count: int, now: datetime
    ) -> bool:
        """Store the new sign count, if the stored one is still the one verified against.

        Compare-and-set: of two concurrent assertions carrying the same counter, only one
        moves it (the other is a replay or a clone). Returns False when the row changed.
        """
        c = webauthn_credentials.c
        result = await connection.execute(
            update(webauthn_credentials)
            .where(c.id == passkey.id, c.sign_count == passkey.sign_count)
            .values(sign_count=new_sign_count, last_used_at=now)
            .returning(c.id)
        )
        return result.first() is not None
