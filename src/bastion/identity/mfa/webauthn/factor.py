"""Passkeys as a kind of second factor known to the MFA service
(:class:`bastion.identity.mfa.interfaces.FactorSource`): the enrollment policy, the login
challenge and an administrator's MFA reset see them."""

from __future__ import annotations

from sqlalchemy import ColumnElement, Connection, bindparam, exists, select
from sqlalchemy.ext.asyncio import AsyncConnection

from bastion.identity.mfa.webauthn.credentials import CredentialStore
from bastion.identity.mfa.webauthn.models import webauthn_credentials
from bastion.identity.tokens.claims import AuthMethod
from bastion.storage.prepared import PreparedStatement

__all__ = ["PasskeyFactor"]

_c = webauthn_credentials.c
#: Built once (every password login asks): whether the user holds a passkey.
_ANY_PASSKEY = select(_c.id).where(_c.user_id == bindparam("uid")).limit(1)
#: The same, run on the driver's cursor (see :mod:`bastion.storage.prepared`).
_READ_ANY_PASSKEY = PreparedStatement(_ANY_PASSKEY)
#: The same as a condition (``SqlEnrollment``): the user of ``uid`` holds a passkey.
_HOLDS_PASSKEY = exists().where(_c.user_id == bindparam("uid"))


class PasskeyFactor:
    """A user is enrolled when they hold at least one passkey (asked synchronously too:
    :class:`~bastion.identity.mfa.interfaces.SyncEnrollment`, and as a SQL condition:
    :class:`~bastion.identity.mfa.interfaces.SqlEnrollment`)."""

    name = "webauthn"
    methods: tuple[str, ...] = (AuthMethod.HARDWARE_KEY.value, AuthMethod.SOFTWARE_KEY.value)

    def __init__(self, credentials: CredentialStore) -> None:
        self.credentials = credentials

    async def is_enrolled(self, connection: AsyncConnection, user_id: str) -> bool:
        return (await connection.execute(_ANY_PASSKEY, {"uid": user_id})).first() is not None

    def holds_factor(self, connection: Connection, user_id: str) -> bool:
        """:meth:`is_enrolled` on a synchronous connection (``SyncEnrollment``)."""
        return bool(_READ_ANY_PASSKEY.execute(connection, {"uid": user_id}))

    def enrolled_condition(self) -> ColumnElement[bool]:
        """:meth:`holds_factor` as a SQL condition on ``uid`` (``SqlEnrollment``)."""
        return _HOLDS_PASSKEY

    async def remove_all(self, connection: AsyncConnection, user_id: str) -> int:
        return await self.credentials.delete_all(connection, user_id)
